// Starts Swagger UI on /api/docs. A file of its own: the pages' CSP allows no inline script.
(function () {
  var root = document.getElementById("swagger-ui");
  var config = JSON.parse(root.dataset.config || "{}");
  config.url = root.dataset.specUrl;
  config.domNode = root;
  window.ui = SwaggerUIBundle(config);
})();
