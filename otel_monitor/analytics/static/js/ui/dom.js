/* DOM helpers for the views: elements with text only, never markup (no innerHTML anywhere). */

const SVGNS = "http://www.w3.org/2000/svg";

export function $(id) {
  return document.getElementById(id);
}

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

export function svgEl(tag, attrs) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export function emptyState(title, hint) {
  const box = el("div", "empty");
  box.appendChild(el("div", "empty-title", title));
  if (hint) box.appendChild(el("div", "empty-hint", hint));
  return box;
}

/** A cell with the column's name kept for the phone layout (each row becomes a card there). */
export function labelled(tag, className, label, text) {
  const cell = el(tag, className, text);
  cell.dataset.label = label;
  return cell;
}

/**
 * A region that may scroll sideways (a traceback, a wide table), reachable by keyboard: focusable,
 * with a name a screen reader announces (WCAG 2.1.1; axe's scrollable-region-focusable).
 */
export function scrollable(node, label) {
  node.tabIndex = 0;
  node.setAttribute("role", "region");
  node.setAttribute("aria-label", label);
  return node;
}

export function backLink(href, text) {
  const a = el("a", "back-link", "← " + text);
  a.href = href;
  return a;
}

/** "GET" as the coloured method badge. */
export function methodBadge(method) {
  return el("span", "method method-" + String(method || "").toLowerCase(), method || "");
}

export function debounce(fn, ms) {
  let t = null;
  return () => {
    clearTimeout(t);
    t = setTimeout(fn, ms);
  };
}
