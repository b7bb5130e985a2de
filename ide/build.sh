#!/usr/bin/env bash
# Rebuilds ide/assets from the npm packages pinned in ide/build/package-lock.json,
# so that the IDE is served from the binary and works with no internet access.
# The output is committed; running this again reproduces it byte for byte.
# assets/ide.js is the one hand-written file there: it starts GraphiQL.
set -euo pipefail
cd "$(dirname "$0")/build"
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
out=../assets
cp node_modules/graphiql/graphiql.min.js node_modules/graphiql/graphiql.min.css "$out/"
cp node_modules/react/umd/react.production.min.js node_modules/react-dom/umd/react-dom.production.min.js "$out/"
cp node_modules/graphql-ws/umd/graphql-ws.min.js "$out/"
{
  for p in graphiql graphql-ws react react-dom; do
    printf '%s %s\n\n' "$p" "$(node -p "require('./node_modules/$p/package.json').version")"
    cat node_modules/$p/LICENSE*
    printf '\n\n'
  done
} > "$out/THIRD_PARTY_LICENSES.txt"
