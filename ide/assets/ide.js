// Starts GraphiQL from the settings the server put on the page. Kept out of
// the page itself so that the Content-Security-Policy can forbid inline scripts.
(function () {
  "use strict";
  var root = document.getElementById("graphiql");
  var url = new URL(root.dataset.endpoint, window.location.href).href;
  var fetcher = GraphiQL.createFetcher({ url: url });
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultHeaders: root.dataset.headers || undefined,
      defaultQuery: root.dataset.query || undefined,
      shouldPersistHeaders: false,
    })
  );
})();
