// Threadline dashboard: live run progress by polling a small JSON endpoint, and the view picker (no framework).
(function () {
  "use strict";
  var POLL_MS = 1500; // ms between progress polls: smooth enough to watch, light on the server
  var ACTIVE = ["queued", "running", "stopping"];

  function cell(row, text, numeric) {
    var td = document.createElement("td");
    td.textContent = text;
    if (numeric) { td.className = "num"; }
    row.appendChild(td);
  }

  // One row per phase: the same columns the server renders (textContent only: never HTML).
  function renderPhases(body, counters) {
    if (!body) { return; }
    while (body.firstChild) { body.removeChild(body.firstChild); }
    Object.keys(counters).forEach(function (name) {
      var p = counters[name];
      if (!p || typeof p !== "object" || !("state" in p)) { return; }
      var row = document.createElement("tr");
      cell(row, name, false);
      cell(row, p.state, false);
      cell(row, p.done + " / " + p.total, true);
      cell(row, p.skipped, true);
      cell(row, p.dead, true);
      cell(row, p.duration_s === null || p.duration_s === undefined ? "" : p.duration_s, true);
      body.appendChild(row);
    });
  }

  function poll(card) {
    var url = card.getAttribute("data-progress-url");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (run) {
        var before = card.getAttribute("data-status");
        document.getElementById("run-status").textContent = run.status;
        document.getElementById("run-status").className = "badge s-" + run.status;
        document.getElementById("run-phase").textContent = run.phase || "\u2013";
        document.getElementById("run-progress").value = run.progress;
        document.getElementById("run-percent").textContent = Math.round(run.progress * 100) + "%";
        document.getElementById("run-dead").textContent = run.dead_letters;
        renderPhases(document.getElementById("run-phases"), run.counters || {});
        card.setAttribute("data-status", run.status);
        if (ACTIVE.indexOf(run.status) >= 0) {
          window.setTimeout(function () { poll(card); }, POLL_MS);
        } else if (before !== run.status) {
          window.location.reload(); // finished: re-render buttons (stop/resume/see stories)
        }
      })
      .catch(function () { window.setTimeout(function () { poll(card); }, POLL_MS * 4); });
  }

  // Scope and run picker: picking shows at once; a new scope shows its latest run (the run list is the old scope's).
  function wirePicker() {
    var scope = document.getElementById("pick-scope");
    var run = document.getElementById("pick-run");
    if (!scope || !run) { return; }
    scope.addEventListener("change", function () { run.disabled = true; scope.form.submit(); });
    run.addEventListener("change", function () { run.form.submit(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var card = document.getElementById("run");
    if (card && ACTIVE.indexOf(card.getAttribute("data-status")) >= 0) { poll(card); }
    wirePicker();
  });
})();
