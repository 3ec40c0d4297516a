// The prediction page: builds one field per input column from the model's description
// (embedded by the server), sends the row to the server's own scoring route and shows
// the answer. Every text from the model or the server is set as text, never as markup.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const model = JSON.parse($("model-description").textContent);
  const NUMBER_TYPES = { double: "any", float: "any", long: "1", integer: "1" };
  const fields = [];

  function el(tag, attributes = {}, text = null) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    if (text !== null) node.textContent = text;
    return node;
  }

  // The example request's first row, by column name.
  function exampleRow(example) {
    if (!example || typeof example !== "object") return {};
    const split = example.dataframe_split;
    if (split && Array.isArray(split.columns) && Array.isArray(split.data) && Array.isArray(split.data[0])) {
      return Object.fromEntries(split.columns.map((name, index) => [name, split.data[0][index]]));
    }
    const records = example.dataframe_records;
    if (Array.isArray(records) && records[0] && typeof records[0] === "object") return records[0];
    const columns = example.inputs || example.instances;
    if (columns && typeof columns === "object" && !Array.isArray(columns)) {
      return Object.fromEntries(Object.entries(columns).map(([name, values]) => [name, Array.isArray(values) ? values[0] : values]));
    }
    return {};
  }

  function readFile(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
      reader.onerror = () => reject(new Error(`the file ${file.name} could not be read`));
      reader.readAsDataURL(file);
    });
  }

  function addField(column, index, example) {
    const id = `field-${index}`;
    const row = el("div", { class: "field" });
    const label = el("label", { for: id }, column.name);
    row.append(label);
    const given = example !== undefined && example !== null;
    let input;
    let read;
    if (column.type in NUMBER_TYPES) {
      input = el("input", { id, type: "number", step: NUMBER_TYPES[column.type], name: column.name });
      if (given) input.value = String(example);
      read = () => (input.value === "" ? null : Number(input.value));
    } else if (column.type === "boolean") {
      input = el("input", { id, type: "checkbox", name: column.name });
      input.checked = example === true;
      read = () => input.checked;
    } else if (column.type === "binary") {
      const picker = el("input", { id, type: "file", name: column.name });
      const preview = el("img", { class: "preview", alt: `${column.name} preview`, hidden: "" });
      picker.addEventListener("change", () => {
        const file = picker.files[0];
        if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
        if (file && file.type.startsWith("image/")) {
          preview.src = URL.createObjectURL(file);
          preview.hidden = false;
        } else {
          preview.removeAttribute("src");
          preview.hidden = true;
        }
      });
      preview.addEventListener("error", () => { preview.hidden = true; }); // not an image after all
      if (given && typeof example === "string") {
        preview.src = `data:image/png;base64,${example}`; // the browser reads the image's own type
        preview.hidden = false;
      }
      row.append(picker, preview);
      read = async () => (picker.files[0] ? readFile(picker.files[0]) : given ? example : null);
    } else {
      input = el("input", { id, type: "text", name: column.name });
      if (column.type === "datetime") input.placeholder = "2024-01-31T12:00:00";
      if (given) input.value = String(example);
      read = () => (input.value === "" && !column.required ? null : input.value);
    }
    if (input) row.append(input);
    const note = `${column.type}${column.required ? "" : ", optional"}`;
    row.append(el("small", {}, note));
    $("fields").append(row);
    fields.push({ column, read });
  }

  function skeleton() {
    if (model.example) return JSON.stringify(model.example, null, 2);
    if (model.columns) {
      return JSON.stringify({ dataframe_split: { columns: model.columns.map((c) => c.name), data: [model.columns.map(() => null)] } }, null, 2);
    }
    return JSON.stringify({ inputs: [] }, null, 2);
  }

  function table(header, rows) {
    const grid = el("table");
    const head = el("tr");
    for (const name of header) head.append(el("th", {}, String(name)));
    grid.append(head);
    for (const row of rows) {
      const line = el("tr");
      for (const value of row) line.append(el("td", {}, typeof value === "object" ? JSON.stringify(value) : String(value)));
      grid.append(line);
    }
    return grid;
  }

  function showPrediction(predictions) {
    const target = $("prediction");
    target.replaceChildren();
    const scalar = (value) => value === null || typeof value !== "object";
    if (Array.isArray(predictions) && predictions.length === 1 && scalar(predictions[0])) {
      target.textContent = String(predictions[0]);
    } else if (Array.isArray(predictions) && predictions.every(scalar)) {
      target.append(table(["row", "prediction"], predictions.map((value, index) => [index, value])));
    } else if (Array.isArray(predictions) && predictions.every((p) => p && typeof p === "object" && !Array.isArray(p))) {
      const names = [...new Set(predictions.flatMap((p) => Object.keys(p)))];
      target.append(table(names, predictions.map((p) => names.map((name) => p[name] ?? ""))));
    } else if (Array.isArray(predictions) && predictions.every(Array.isArray)) {
      const width = Math.max(...predictions.map((p) => p.length));
      target.append(table([...Array(width).keys()], predictions));
    } else {
      target.textContent = JSON.stringify(predictions);
    }
  }

  function showError(text) {
    $("result").hidden = true;
    $("error").textContent = text;
    $("error").hidden = false;
  }

  async function send(body, contentType, button) {
    $("error").hidden = true;
    button.disabled = true;
    const started = performance.now();
    try {
      const response = await fetch("invocations", { method: "POST", headers: { "Content-Type": contentType }, body });
      const text = await response.text();
      const elapsed = performance.now() - started;
      let answer = null;
      try { answer = JSON.parse(text); } catch (_) { /* shown as text below */ }
      if (!response.ok) {
        const message = (answer && (answer.message || answer.error)) || text || response.statusText;
        const who = response.status < 500 ? "The model could not score this input" : "The server failed to score this input";
        showError(`${who} (${response.status} ${response.statusText}): ${message}`);
        return;
      }
      showPrediction(answer ? answer.predictions : text);
      const version = model.version ? ` version ${model.version}` : "";
      $("answered-by").textContent = `${model.model}${version} · answered in ${elapsed.toFixed(1)} ms`;
      $("response-body").textContent = answer ? JSON.stringify(answer, null, 2) : text;
      $("result").hidden = false;
    } catch (error) {
      showError(`The server could not be reached: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  }

  if (model.columns) {
    const example = exampleRow(model.example);
    model.columns.forEach((column, index) => addField(column, index, example[column.name]));
    $("row-form").hidden = false;
    $("row-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      let row;
      try {
        row = await Promise.all(fields.map((field) => field.read()));
      } catch (error) {
        showError(error.message);
        return;
      }
      const body = JSON.stringify({ dataframe_split: { columns: fields.map((f) => f.column.name), data: [row] } });
      await send(body, "application/json", $("predict"));
    });
  } else {
    $("raw-request").open = true;
  }
  $("request-body").value = skeleton();
  $("send-raw").addEventListener("click", () => send($("request-body").value, $("request-type").value, $("send-raw")));
})();
