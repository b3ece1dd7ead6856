// dressfinder's drop-in "you may also like" block for a shop's product page. Paste under the template:
//   <div data-dressfinder-similar="SKU"></div>
//   <script src="https://HOST/static/embed.js" async></script>
// Optional on the div: data-dressfinder-k="4" (cards, 1-24), data-dressfinder-all="true" (out of stock too).
// It fetches https://HOST/embed/similar/SKU (CORS: the server's DRESSFINDER_EMBED_ORIGINS), puts the
// block in the div, and reports (navigator.sendBeacon, no cookies, nothing about the visitor) one
// view when the block is first on screen and each click on a product in it. Blocks already in the
// page (the iframe variant, /embed/frame/similar/SKU) are wired the same way.
(function () {
  "use strict";
  var me = document.currentScript || document.querySelector("script[src*='/static/embed.js']");
  var base = me ? me.src.replace(/\/static\/embed\.js(\?.*)?$/, "") : "";

  function send(url, data) {
    var body = JSON.stringify(data);
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(url, body)) { return; }
    } catch (e) { /* fall through */ }
    if (window.fetch) {
      fetch(url, { method: "POST", body: body, mode: "no-cors", credentials: "omit", keepalive: true })
        .catch(function () { /* counting must never break the shop's page */ });
    }
  }

  function wire(block) {
    if (block.getAttribute("data-dressfinder-wired")) { return; }
    block.setAttribute("data-dressfinder-wired", "1");
    var url = block.getAttribute("data-dressfinder-events");
    var query = block.getAttribute("data-dressfinder-query");
    var product = block.getAttribute("data-dressfinder-product");
    if (!url || !block.querySelector("[data-dressfinder-item]")) { return; }
    var seen = false;
    function view() {
      if (seen) { return; }
      seen = true;
      send(url, { type: "view", query: query, product: product });
    }
    if ("IntersectionObserver" in window) {
      var io = new IntersectionObserver(function (entries) {
        entries.forEach(function (e) { if (e.isIntersecting) { view(); io.disconnect(); } });
      });
      io.observe(block);
    } else {
      view();
    }
    block.addEventListener("click", function (e) {
      var a = e.target && e.target.closest ? e.target.closest("[data-dressfinder-item]") : null;
      if (!a) { return; }
      send(url, { type: "click", query: query, product: product, item: a.getAttribute("data-dressfinder-item") });
    });
  }

  // The block's stylesheet, loaded once into the shop's <head>; the block is put in the page only
  // once it has loaded (or failed), so it never shows unstyled for a moment.
  var sheets = {};
  function sheet(href) {
    if (!sheets[href]) {
      sheets[href] = new Promise(function (done) {
        var link = document.createElement("link");
        link.rel = "stylesheet";
        link.href = href;
        link.onload = link.onerror = function () { done(); };
        document.head.appendChild(link);
      });
    }
    return sheets[href];
  }

  function load(slot) {
    if (slot.getAttribute("data-dressfinder-loaded")) { return; }
    slot.setAttribute("data-dressfinder-loaded", "1");
    var id = slot.getAttribute("data-dressfinder-similar");
    if (!id || !window.fetch) { return; }
    var params = [];
    var k = slot.getAttribute("data-dressfinder-k");
    if (k) { params.push("k=" + encodeURIComponent(k)); }
    if (slot.getAttribute("data-dressfinder-all") === "true") { params.push("all=true"); }
    var url = base + "/embed/similar/" + encodeURIComponent(id) + (params.length ? "?" + params.join("&") : "");
    fetch(url, { mode: "cors", credentials: "omit" })
      .then(function (r) { return r.ok ? r.text() : ""; })
      .then(function (html) {
        if (!html) { return; }
        var t = document.createElement("template");
        t.innerHTML = html;        // our own fragment: markup only, no script
        var css = t.content.querySelector("link[rel='stylesheet']");
        var ready = css ? sheet(css.href) : Promise.resolve();
        if (css) { css.parentNode.removeChild(css); }
        return ready.then(function () {
          while (slot.firstChild) { slot.removeChild(slot.firstChild); }
          slot.appendChild(t.content);
          var block = slot.querySelector(".dfs");
          if (block) { wire(block); }
        });
      })
      .catch(function () { /* the shop's page goes on without the block */ });
  }

  function start() {
    document.querySelectorAll("[data-dressfinder-similar]").forEach(load);
    document.querySelectorAll(".dfs[data-dressfinder-query]").forEach(wire);
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
