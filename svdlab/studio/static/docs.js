// The API reference at /docs: every path of the server's OpenAPI document, with its parameters and bodies.
// Built with textContent only; no library, no CDN (the studio's CSP allows scripts from the server alone).
"use strict";

(() => {
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function resolve(schema, spec) {
    const ref = schema && schema.$ref;
    return ref ? spec.components.schemas[ref.split("/").pop()] || {} : schema || {};
  }

  function describe(schema, spec) {
    const target = resolve(schema, spec);
    if (target.properties) {
      const required = new Set(target.required || []);
      return Object.entries(target.properties)
        .map(([name, field]) => `${name}${required.has(name) ? "" : "?"}: ${typeName(field, spec)}`)
        .join(", ");
    }
    return typeName(target, spec);
  }

  function typeName(schema, spec) {
    const target = resolve(schema, spec);
    if (target.anyOf) return target.anyOf.map((option) => typeName(option, spec)).join(" | ");
    if (target.type === "array") return `${typeName(target.items, spec)}[]`;
    return target.type || target.title || "any";
  }

  function operation(path, method, details, spec) {
    const block = el("div", "endpoint");
    const head = el("h3");
    head.append(el("code", "method", method.toUpperCase()), " ", el("code", "", path));
    block.append(head, el("p", "", details.summary || ""));
    const rows = [];
    for (const parameter of details.parameters || []) {
      rows.push([`${parameter.in} ${parameter.name}`, typeName(parameter.schema, spec)]);
    }
    const body = details.requestBody && details.requestBody.content;
    for (const [type, content] of Object.entries(body || {})) {
      rows.push([`body (${type})`, describe(content.schema, spec)]);
    }
    if (rows.length) {
      const table = el("table", "metrics");
      for (const [name, value] of rows) {
        const row = table.insertRow();
        row.insertCell().textContent = name;
        row.insertCell().textContent = value;
      }
      block.append(table);
    }
    return block;
  }

  fetch("/openapi.json")
    .then((response) => response.json())
    .then((spec) => {
      const list = document.getElementById("endpoints");
      list.replaceChildren();
      for (const [path, methods] of Object.entries(spec.paths)) {
        for (const [method, details] of Object.entries(methods)) {
          list.append(operation(path, method, details, spec));
        }
      }
    })
    .catch((error) => {
      document.getElementById("endpoints").textContent = `Cannot read /openapi.json: ${error.message}`;
    });
})();
