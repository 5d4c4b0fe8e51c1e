// reconciler's page: live refresh, filter, sort, keyboard navigation, and the optional actions.
// No framework and no inline script (the Content-Security-Policy forbids it). The refresh fetches
// this page's own URL and swaps the parts marked data-live, so the server renders everything.
"use strict";
(function () {
  var refreshMs = parseInt(document.body.dataset.refresh || "2000", 10);
  var sortState = null; // {index, dir}
  var lastHtml = null;

  function $(id) { return document.getElementById(id); }
  function rows() {
    var body = $("rows");
    return body ? Array.prototype.slice.call(body.querySelectorAll("tr[data-key]")) : [];
  }
  function setStatus(text) { var el = $("live-status"); if (el) { el.textContent = text; } }

  // -- filter --------------------------------------------------------------------------------
  function applyFilter() {
    var text = ($("filter-text") || {}).value || "";
    var sync = ($("filter-sync") || {}).value || "";
    var health = ($("filter-health") || {}).value || "";
    var label = (($("filter-label") || {}).value || "").trim();
    var needles = text.toLowerCase().split(/\s+/).filter(Boolean);
    var labels = label.split(/[\s,]+/).filter(Boolean);
    var all = rows(), shown = 0;
    all.forEach(function (row) {
      var hay = row.textContent.toLowerCase();
      var have = (row.dataset.labels || "").split(" ");
      var ok = needles.every(function (n) { return hay.indexOf(n) >= 0; }) &&
        (!sync || row.dataset.sync === sync) &&
        (!health || row.dataset.health === health) &&
        labels.every(function (l) {
          return l.indexOf("=") > 0 && l[l.length - 1] !== "=" ? have.indexOf(l) >= 0
            : have.some(function (h) { return h.indexOf(l.replace(/=$/, "") + "=") === 0; });
        });
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    var counter = $("shown");
    if (counter) { counter.textContent = shown + " of " + all.length + " shown"; }
    roving();
  }

  // -- sort ----------------------------------------------------------------------------------
  function cellValue(row, index) {
    var cell = row.children[index];
    return cell ? (cell.dataset.value || cell.textContent) : "";
  }
  function applySort() {
    if (!sortState) { return; }
    var body = $("rows");
    var list = rows();
    var i = sortState.index, dir = sortState.dir;
    list.sort(function (a, b) {
      var x = cellValue(a, i), y = cellValue(b, i);
      var nx = Number(x), ny = Number(y);
      var c = (x !== "" && y !== "" && !isNaN(nx) && !isNaN(ny)) ? nx - ny
        : x.localeCompare(y, undefined, { numeric: true });
      if (c === 0) { c = a.dataset.key.localeCompare(b.dataset.key); }
      return dir * c;
    });
    list.forEach(function (row) { body.appendChild(row); });
    document.querySelectorAll("#deployments th").forEach(function (th, n) {
      th.setAttribute("aria-sort", n === i ? (dir > 0 ? "ascending" : "descending") : "none");
    });
  }
  function onSortClick(event) {
    var button = event.target.closest("button[data-sort]");
    if (!button) { return; }
    var index = parseInt(button.dataset.sort, 10);
    var dir = sortState && sortState.index === index ? -sortState.dir : 1;
    sortState = { index: index, dir: dir };
    applySort();
    roving();
  }

  // -- keyboard: one row is in the tab order; arrows (or j/k) move, Enter opens -------------
  function visibleRows() { return rows().filter(function (r) { return !r.hidden; }); }
  function roving() {
    var list = visibleRows();
    var current = list.filter(function (r) { return r.tabIndex === 0; })[0] || list[0];
    rows().forEach(function (r) { r.tabIndex = (r === current) ? 0 : -1; });
  }
  function focusRow(row) {
    if (!row) { return; }
    rows().forEach(function (r) { r.tabIndex = -1; });
    row.tabIndex = 0;
    row.focus();
  }
  function onKey(event) {
    var target = event.target;
    var typing = /^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName);
    if (event.key === "/" && !typing && $("filter-text")) {
      event.preventDefault();
      $("filter-text").focus();
      return;
    }
    if (typing || !target.matches || !target.matches("tr[data-key]")) { return; }
    var list = visibleRows();
    var at = list.indexOf(target);
    var next = null;
    if (event.key === "ArrowDown" || event.key === "j") { next = list[Math.min(at + 1, list.length - 1)]; }
    else if (event.key === "ArrowUp" || event.key === "k") { next = list[Math.max(at - 1, 0)]; }
    else if (event.key === "Home") { next = list[0]; }
    else if (event.key === "End") { next = list[list.length - 1]; }
    else if (event.key === "Enter") { window.location.href = target.dataset.href; return; }
    if (next) { event.preventDefault(); focusRow(next); }
  }
  function onRowClick(event) {
    var row = event.target.closest("tr[data-href]");
    if (row && !event.target.closest("a, button")) { window.location.href = row.dataset.href; }
  }

  // -- live refresh --------------------------------------------------------------------------
  function swap(html) {
    if (html === lastHtml) { return; }
    lastHtml = html;
    var doc = new DOMParser().parseFromString(html, "text/html");
    var focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.key : null;
    document.querySelectorAll("[data-live]").forEach(function (el) {
      var fresh = el.id ? doc.getElementById(el.id) : null;
      if (fresh && fresh.innerHTML !== el.innerHTML) { el.innerHTML = fresh.innerHTML; }
    });
    applySort();
    applyFilter();
    if (focused) {
      var again = rows().filter(function (r) { return r.dataset.key === focused; })[0];
      if (again) { focusRow(again); }
    }
  }
  function refresh() {
    if (document.hidden) { return schedule(); }
    fetch(window.location.pathname + window.location.search, {
      headers: { "Accept": "text/html" }, cache: "no-store", credentials: "same-origin"
    }).then(function (response) {
      if (!response.ok && response.status !== 404) { throw new Error(String(response.status)); }
      return response.text();
    }).then(function (html) {
      swap(html);
      setStatus("live · updated " + new Date().toLocaleTimeString());
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || "0") + 1);
    }).catch(function () {
      setStatus("offline: retrying");
    }).then(schedule);
  }
  function schedule() { window.setTimeout(refresh, refreshMs); }

  // -- actions (only rendered with --ui-actions) ---------------------------------------------
  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }
  function post(url) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Authorization": "Bearer " + (window.sessionStorage.getItem("reconciler-token") || ""),
        "X-CSRF-Token": csrf()
      }
    });
  }
  function say(text) { var el = $("action-result"); if (el) { el.textContent = text; } }
  function onAction(event) {
    var button = event.target.closest("button[data-action]");
    if (!button) { return; }
    post(button.dataset.action).then(function (response) {
      if (response.status === 202 || response.status === 200) {
        say(button.textContent.trim() + ": done (" + response.status + ")");
        lastHtml = null;
        refresh();
      } else {
        say(button.textContent.trim() + ": refused (" + response.status + "): sign in with the token");
      }
    }).catch(function () { say("request failed"); });
  }
  function onLogin(event) {
    event.preventDefault();
    var input = $("token");
    window.sessionStorage.setItem("reconciler-token", input.value);
    input.value = "";
    post("/ui/actions/login").then(function (response) {
      var ok = response.status === 204;
      if (!ok) { window.sessionStorage.removeItem("reconciler-token"); }
      $("login-state").textContent = ok ? "signed in" : "wrong token";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    ["filter-text", "filter-sync", "filter-health", "filter-label"].forEach(function (id) {
      var el = $(id);
      if (el) { el.addEventListener("input", applyFilter); el.addEventListener("change", applyFilter); }
    });
    var filters = $("filters");
    if (filters) { filters.addEventListener("submit", function (e) { e.preventDefault(); }); }
    var table = $("deployments");
    if (table) {
      table.querySelector("thead").addEventListener("click", onSortClick);
      table.addEventListener("click", onRowClick);
    }
    document.addEventListener("keydown", onKey);
    document.addEventListener("click", onAction);
    var login = $("login");
    if (login) {
      login.addEventListener("submit", onLogin);
      if (window.sessionStorage.getItem("reconciler-token")) { $("login-state").textContent = "signed in"; }
    }
    applyFilter();
    schedule();
  });
})();
