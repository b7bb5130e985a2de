// Starts GraphiQL from the settings the server put on the page. Kept out of
// the page itself so that the Content-Security-Policy can forbid inline scripts.
(function () {
  "use strict";
  var root = document.getElementById("graphiql");
  var url = new URL(root.dataset.endpoint, window.location.href);
  var wsURL = new URL(url.href);
  wsURL.protocol = url.protocol === "https:" ? "wss:" : "ws:";

  // Browsers cannot set headers on a WebSocket, so subscriptions carry the
  // headers editor's Authorization in connection_init instead. The headers
  // are those of the most recent operation, read when the socket connects.
  var lastHeaders = {};
  var wsClient = graphqlWs.createClient({
    url: wsURL.href,
    lazy: true,
    connectionParams: function () { return lastHeaders; },
  });
  var inner = GraphiQL.createFetcher({ url: url.href, wsClient: wsClient });
  function fetcher(params, opts) {
    if (opts && opts.headers) lastHeaders = opts.headers;
    return inner(params, opts);
  }

  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultHeaders: root.dataset.headers || undefined,
      defaultQuery: root.dataset.query || undefined,
      shouldPersistHeaders: false,
    })
  );
})();
