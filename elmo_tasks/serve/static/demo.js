// The demo page: POST /v1/embed for the word's vectors, POST /v1/models/NAME:predict for a tagger's entities.
"use strict";

const $ = (id) => document.getElementById(id);

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("apikey").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function call(method, path, body) {
  const response = await fetch(path, { method, headers: headers(), body: body && JSON.stringify(body) });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

function cosine(a, b) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return na && nb ? dot / Math.sqrt(na * nb) : 0;
}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  Object.assign(node, attrs || {});
  return node;
}

function showCosines(word, tokens, embeddings) {
  const out = $("cosines");
  out.replaceChildren();
  const found = [];
  tokens.forEach((sent, s) => sent.forEach((tok, t) => {
    if (tok.toLowerCase() === word.toLowerCase()) found.push([s, t]);
  }));
  if (found.length < 2) {
    out.append(el("p", `"${word}" occurs ${found.length} time(s): give at least two occurrences to compare.`,
      { className: "error" }));
    return;
  }
  const names = found.map(([s, t]) => `s${s + 1}:${t + 1}`);
  for (let layer = 0; layer < embeddings[0].length; layer++) {
    const table = el("table", undefined, { className: "cosine" });
    table.append(el("caption", `layer ${layer}`));
    const head = el("tr");
    head.append(el("th", ""), ...names.map((n) => el("th", n)));
    table.append(head);
    found.forEach(([s1, t1], i) => {
      const row = el("tr");
      row.append(el("th", names[i]));
      found.forEach(([s2, t2]) => {
        const c = cosine(embeddings[s1][layer][t1], embeddings[s2][layer][t2]);
        const cell = el("td", c.toFixed(3));
        cell.style.background = `hsl(210, 80%, ${100 - Math.max(0, c) * 45}%)`;
        row.append(cell);
      });
      table.append(row);
    });
    out.append(table);
  }
}

function showEntities(name, sentences, predictions) {
  const out = $("entities");
  out.append(el("h2", `Entities (${name})`));
  sentences.forEach((text, i) => {
    const line = el("div", undefined, { className: "sentence" });
    let at = 0;
    for (const span of predictions[i].spans || []) {
      line.append(document.createTextNode(text.slice(at, span.start)));
      const mark = el("mark", text.slice(span.start, span.end), { title: `${span.label} ${span.score.toFixed(2)}` });
      mark.append(el("span", span.label));
      line.append(mark);
      at = span.end;
    }
    line.append(document.createTextNode(text.slice(at)));
    out.append(line);
  });
}

async function compare(event) {
  event.preventDefault();
  const sentences = $("sentences").value.split("\n").map((s) => s.trim()).filter((s) => s);
  const word = $("word").value.trim();
  $("status").textContent = "working...";
  $("entities").replaceChildren();
  try {
    const answer = await call("POST", "/v1/embed", { inputs: sentences, output: "layers" });
    showCosines(word, answer.tokens, answer.embeddings);
    const models = await call("GET", "/v1/models");
    for (const model of models.models.filter((m) => m.task === "tagging")) {
      const tagged = await call("POST", `/v1/models/${encodeURIComponent(model.name)}:predict`,
        { instances: sentences.map((text) => ({ text })) });
      showEntities(model.name, sentences, tagged.predictions);
    }
    $("status").textContent = `done: ${sentences.length} sentences, biLM ${models.bilm.name}`;
  } catch (error) {
    $("status").textContent = "error: " + error.message;
    $("status").className = "error";
  }
}

$("form").addEventListener("submit", compare);
