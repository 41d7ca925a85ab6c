// Baton admin: refreshes the transfers list and a transfer's timeline from their JSON endpoints,
// and marks the settings form as changed. No framework and no build step: a refreshed row is a
// clone of the page's own <template>, filled through its data-field and data-attrs markers.
"use strict";

// The element itself and its descendants that match `selector`.
function marked(root, selector) {
  const found = Array.from(root.querySelectorAll(selector));
  return root.matches && root.matches(selector) ? [root, ...found] : found;
}

// data-field="key" sets the text; data-attrs="attribute=key …" sets attributes. Text only, never HTML.
function fill(root, data) {
  for (const element of marked(root, "[data-field]")) {
    element.textContent = data[element.dataset.field] ?? "";
  }
  for (const element of marked(root, "[data-attrs]")) {
    for (const pair of element.dataset.attrs.split(" ")) {
      const [attribute, key] = pair.split("=");
      element.setAttribute(attribute, data[key] ?? "");
    }
  }
}

function renderRows(container, templateId, rows) {
  const template = document.getElementById(templateId);
  const body = container.querySelector("[data-rows]");
  const fresh = rows.map((row) => {
    const node = template.content.firstElementChild.cloneNode(true);
    fill(node, row);
    return node;
  });
  body.replaceChildren(...fresh);
  const empty = container.querySelector("[data-empty]");
  if (empty) empty.hidden = rows.length > 0;
}

function setLive(text, state) {
  const live = document.querySelector("[data-live]");
  if (!live) return;
  live.textContent = text;
  live.dataset.state = state || "";
}

function render(container, data) {
  if (container.dataset.list === "transfers") {
    renderRows(container, container.dataset.rowTemplate, data.transfers);
    return false;
  }
  fill(container.querySelector("[data-details]"), data.details);
  const badge = document.querySelector("[data-details-status]");
  if (badge) {
    badge.textContent = data.details.status;
    badge.dataset.status = data.details.status;
  }
  renderRows(container, container.dataset.rowTemplate, data.timeline);
  return data.final;
}

function poll(container) {
  const every = Number(container.dataset.pollMs) || 2000;
  async function tick() {
    if (document.hidden) {
      setTimeout(tick, every);
      return;
    }
    let data;
    try {
      const response = await fetch(container.dataset.poll, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (response.status === 401) {
        setLive("Signed out: reload the page to sign in again", "error");
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      data = await response.json();
    } catch (error) {
      setLive("Reconnecting…", "error");
      setTimeout(tick, every);
      return;
    }
    if (render(container, data)) {
      setLive("Finished", "");
      return;
    }
    setLive(`Live · updated ${data.now} UTC`, "");
    setTimeout(tick, every);
  }
  setTimeout(tick, every);
}

function watchSettings(form) {
  const hint = form.querySelector("[data-dirty]");
  const initial = new URLSearchParams(new FormData(form)).toString();
  form.addEventListener("input", () => {
    hint.hidden = new URLSearchParams(new FormData(form)).toString() === initial;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  for (const container of document.querySelectorAll("[data-poll]")) {
    if (container.dataset.final !== "true") poll(container);
  }
  const form = document.querySelector("[data-settings-form]");
  if (form) watchSettings(form);
});
