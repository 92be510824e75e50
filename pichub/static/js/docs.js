// /docs: Swagger UI over the OpenAPI document, served from this package (works offline).
// A token handed over from the API tokens page (sessionStorage, this tab only) is pre-filled.
"use strict";

window.addEventListener("DOMContentLoaded", function () {
  const root = document.getElementById("swagger-ui");
  const ui = window.SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    tryItOutEnabled: false,
    persistAuthorization: false,
    validatorUrl: null,
    displayRequestDuration: true,
    defaultModelsExpandDepth: 0,
    docExpansion: "list",
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    onComplete: function () {
      const token = sessionStorage.getItem("pichub-docs-token");
      if (token) ui.preauthorizeApiKey("bearerAuth", token);
    },
  });
  window.pichubDocs = ui;
});
