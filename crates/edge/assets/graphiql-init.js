// GraphiQL's start: served from the binary like the rest of its assets, so the page's
// Content-Security-Policy allows scripts from the edge alone (script-src 'self').
const url = new URL('/graphql', window.location.href);
const wsUrl = new URL('/graphql', window.location.href);
wsUrl.protocol = wsUrl.protocol === 'https:' ? 'wss:' : 'ws:';
// A token pasted in the Headers editor ({"Authorization": "Bearer …"}) goes on every HTTP
// request and, for subscriptions, in the connection_init payload of the WebSocket, which
// is opened again when the token changes.
let wsClient = null;
let wsAuthorization = null;
function wsClientFor(authorization) {
  if (wsClient === null || wsAuthorization !== authorization) {
    if (wsClient !== null) wsClient.dispose();
    wsAuthorization = authorization;
    wsClient = graphqlWs.createClient({
      url: wsUrl.toString(),
      connectionParams: authorization ? { authorization } : {},
    });
  }
  return wsClient;
}
function fetcher(params, options) {
  const headers = (options && options.headers) || {};
  const name = Object.keys(headers).find((key) => key.toLowerCase() === 'authorization');
  const authorization = name === undefined ? null : headers[name];
  return GraphiQL.createFetcher({
    url: url.toString(),
    wsClient: wsClientFor(authorization),
  })(params, options);
}
const root = ReactDOM.createRoot(document.getElementById('graphiql'));
root.render(React.createElement(GraphiQL, {
  fetcher,
  defaultEditorToolsVisibility: true,
  defaultQuery: '# Welcome to CrowdCrunch. Anyone may read the catalog:\n{\n  products(first: 5) {\n    edges { cursor node { sku title price { amount currencyCode } stock { available } } }\n    pageInfo { hasNextPage endCursor }\n  }\n}\n\n# Everything else needs a token: paste one in Headers below as\n# {"Authorization": "Bearer <token>"}\n# (`crowdcrunch dev` prints one for a customer and for staff at start;\n# `crowdcrunch token --data-dir DIR --staff NAME` makes another).\n',
}));
