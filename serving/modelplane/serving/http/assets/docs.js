// Renders the server's OpenAPI document: each operation with its request schema and
// example, which can be edited and sent to the server as written.
"use strict";

(async () => {
  const main = document.getElementById("operations");
  function el(tag, attributes = {}, text = null) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    if (text !== null) node.textContent = text;
    return node;
  }
  const spec = await (await fetch("openapi.json")).json();
  if (spec.info.description) main.append(el("p", {}, spec.info.description));
  for (const [path, operations] of Object.entries(spec.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      const box = el("section", { class: "operation", id: operation.operationId });
      const title = el("h2");
      title.append(el("span", { class: "method" }, method), el("code", {}, path));
      box.append(title, el("p", {}, operation.summary || ""));
      let url = path;
      for (const parameter of operation.parameters || []) {
        const value = parameter.example ?? (parameter.schema.enum || [""])[0];
        url = url.replace(`{${parameter.name}}`, encodeURIComponent(value));
      }
      const media = ((operation.requestBody || {}).content || {})["application/json"];
      let body = null;
      if (media) {
        const schema = el("details");
        schema.append(el("summary", {}, "Request schema"), el("pre", {}, JSON.stringify(media.schema, null, 2)));
        body = el("textarea", { rows: "8", spellcheck: "false", "aria-label": `${operation.operationId} request` });
        body.value = media.example ? JSON.stringify(media.example, null, 2) : "";
        box.append(schema, body);
      }
      const answer = el("pre", { class: "answer", hidden: "" });
      const send = el("button", { type: "button" }, "Send");
      send.addEventListener("click", async () => {
        const request = { method: method.toUpperCase() };
        if (body) Object.assign(request, { headers: { "Content-Type": "application/json" }, body: body.value });
        try {
          const response = await fetch(url.replace(/^\//, ""), request);
          answer.textContent = `${response.status} ${response.statusText}\n\n${await response.text()}`;
        } catch (error) {
          answer.textContent = `The server could not be reached: ${error.message}`;
        }
        answer.hidden = false;
      });
      box.append(send, answer);
      main.append(box);
    }
  }
})();
