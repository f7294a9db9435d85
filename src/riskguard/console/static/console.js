// riskguard console: reveal buttons, select-all on the alert queue, the case graph (Cytoscape.js).
// No inline scripts: the pages' Content-Security-Policy allows scripts from this origin only.
(function () {
  "use strict";
  var csrf = document.body.getAttribute("data-csrf") || "";

  function reveal(button) {
    var body = new URLSearchParams({ csrf: csrf, ref: button.getAttribute("data-ref"), target: location.pathname });
    fetch("/console/reveal", { method: "POST", body: body, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (data) {
        document.querySelectorAll('.pii[data-ref="' + button.getAttribute("data-ref") + '"]').forEach(function (el) {
          el.textContent = data.value; el.classList.add("revealed");
        });
        button.remove();
      })
      .catch(function (status) { button.textContent = "✕ " + status; button.disabled = true; });
  }

  function drawGraph(box) {
    var source = document.getElementById(box.getAttribute("data-source"));
    var elements = source ? JSON.parse(source.textContent) : [];
    if (typeof window.cytoscape !== "function") {
      box.innerHTML = '<div class="missing" id="graph-missing">' + box.getAttribute("data-missing") + "</div>";
      return;
    }
    var count = Array.isArray(elements) ? elements.length : (elements.nodes || []).length;
    if (!count) {
      box.innerHTML = '<div class="missing">' + box.getAttribute("data-empty") + "</div>";
      return;
    }
    var cy = window.cytoscape({
      container: box,
      elements: elements,
      wheelSensitivity: 0.3,
      style: [
        { selector: "node", style: { label: "data(label)", "font-size": 9, "background-color": "#5c6bc0", width: 18, height: 18, "text-valign": "bottom", "text-margin-y": 2 } },
        { selector: "node[kind = 'account']", style: { "background-color": "#1e88e5", shape: "ellipse" } },
        { selector: "node[kind = 'device']", style: { "background-color": "#8e24aa", shape: "round-rectangle" } },
        { selector: "node[kind = 'phone']", style: { "background-color": "#00897b", shape: "diamond" } },
        { selector: "node[kind = 'card']", style: { "background-color": "#f4511e", shape: "rectangle" } },
        { selector: "node[kind = 'ip']", style: { "background-color": "#6d4c41", shape: "triangle" } },
        { selector: "node[?flagged]", style: { "border-width": 3, "border-color": "#c62828" } },
        { selector: "edge", style: { width: 1.5, "line-color": "#9aa5bd", "curve-style": "bezier", label: "data(label)", "font-size": 8, color: "#6b7487" } },
        { selector: "edge[kind = 'money']", style: { "line-color": "#e53935", "target-arrow-color": "#e53935", "target-arrow-shape": "triangle", width: 2 } }
      ],
      layout: count > 400
        ? { name: "concentric", concentric: function (n) { return n.degree(); }, levelWidth: function () { return 2; }, animate: false, padding: 20 }
        : { name: "cose", animate: false, randomize: false, padding: 20, numIter: count > 100 ? 600 : 1000, nodeRepulsion: function () { return 8000; } }
    });
    box.setAttribute("data-nodes", String(cy.nodes().length));
    box.setAttribute("data-edges", String(cy.edges().length));
    cy.on("tap", "node", function (evt) {
      var ref = evt.target.data("ref");
      if (ref) { location.href = "/console/entities/" + ref; }
    });
    window.rgGraph = cy;
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("button.reveal").forEach(function (b) {
      b.addEventListener("click", function () { reveal(b); });
    });
    var all = document.getElementById("select-all");
    if (all) {
      all.addEventListener("change", function () {
        document.querySelectorAll("input.pick").forEach(function (c) { c.checked = all.checked; });
      });
    }
    document.querySelectorAll("[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (e) { if (!window.confirm(form.getAttribute("data-confirm"))) { e.preventDefault(); } });
    });
    document.querySelectorAll(".graph[data-source]").forEach(drawGraph);
  });
})();
