// dressfinder: progressive enhancement for the search form (the form works without it).
// Drag-and-drop / paste a photo, preview it, draw a box around the dress (mouse, touch, pen),
// check type and size before sending; on results pages, show the crop box and score bars.
(function () {
  "use strict";

  // Place a box given as [left, top, right, bottom] fractions of the photo, in pixels over the
  // photo itself (the stage around it can be wider than the scaled photo).
  function placeBox(box, c) {
    var img = box.parentNode.querySelector("img");
    var x = img.offsetLeft, y = img.offsetTop, w = img.offsetWidth, h = img.offsetHeight;
    box.style.left = (x + c[0] * w) + "px";
    box.style.top = (y + c[1] * h) + "px";
    box.style.width = ((c[2] - c[0]) * w) + "px";
    box.style.height = ((c[3] - c[1]) * h) + "px";
    box.setAttribute("data-at", c.join(","));
    box.hidden = false;
  }
  function replaceBoxes() {
    document.querySelectorAll(".crop-box[data-at]").forEach(function (b) {
      if (!b.hidden) { placeBox(b, b.getAttribute("data-at").split(",").map(parseFloat)); }
    });
  }
  window.addEventListener("resize", replaceBoxes);

  // ---- results and product pages
  document.querySelectorAll("[data-score]").forEach(function (el) {
    var s = Math.max(0, Math.min(1, parseFloat(el.getAttribute("data-score")) || 0));
    el.style.width = (s * 100).toFixed(1) + "%";
  });
  var shown = document.getElementById("query-crop");
  if (shown) {
    var showIt = function () { placeBox(shown, shown.getAttribute("data-crop").split(",").map(parseFloat)); };
    var qimg = document.getElementById("query-img");
    if (qimg.complete) { showIt(); } else { qimg.addEventListener("load", showIt); }
  }

  // ---- results page: the other regions found, a box of her own, the whole photo. The photo is
  // sent again (the page's copy of it) with the box: her box always overrides detection.
  function refineResults(stage, refine) {
    var qimg = document.getElementById("query-img");
    var sending = false;
    var parse = function (text) { return text.split(",").map(parseFloat); };
    var regionBoxes = stage.querySelectorAll(".region-box");
    var showRegions = function () { regionBoxes.forEach(function (b) { placeBox(b, parse(b.getAttribute("data-region"))); }); };
    if (qimg.complete) { showRegions(); } else { qimg.addEventListener("load", showRegions); }
    function searchWith(crop, detect) {
      if (sending) { return; }
      sending = true;
      document.getElementById("refine-crop").value = crop ? crop.map(function (v) { return v.toFixed(4); }).join(",") : "";
      document.getElementById("refine-detect").value = detect ? "true" : "false";
      document.getElementById("query-caption").textContent = "Searching…";
      // the page's copy of the photo is a data: URL (no fetch: the page's CSP allows no connections)
      var parts = qimg.src.split(",");
      var type = (parts[0].match(/^data:([^;]+)/) || [null, "image/jpeg"])[1];
      var bytes = Uint8Array.from(atob(parts[1] || ""), function (c) { return c.charCodeAt(0); });
      var dt = new DataTransfer();
      dt.items.add(new File([bytes], "photo.jpg", { type: type }));
      document.getElementById("refine-file").files = dt.files;
      refine.submit();
    }
    document.querySelectorAll(".region-chip, .region-box").forEach(function (b) {
      b.addEventListener("click", function (e) { e.preventDefault(); searchWith(parse(b.getAttribute("data-region")), true); });
    });
    var whole = document.getElementById("search-whole");
    if (whole) { whole.addEventListener("click", function () { searchWith(null, false); }); }
    var draft = document.createElement("div");
    draft.className = "crop-box";
    draft.id = "draft-box";
    draft.hidden = true;
    stage.appendChild(draft);
    var start = null;
    function frac(e) {
      var r = qimg.getBoundingClientRect();
      return [Math.max(0, Math.min(1, (e.clientX - r.left) / r.width)), Math.max(0, Math.min(1, (e.clientY - r.top) / r.height))];
    }
    function boxOf(a, b) { return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])]; }
    stage.addEventListener("pointerdown", function (e) {
      if (e.button !== undefined && e.button !== 0) { return; }
      e.preventDefault();
      start = frac(e);
      if (stage.setPointerCapture) { try { stage.setPointerCapture(e.pointerId); } catch (err) { /* ignore */ } }
    });
    stage.addEventListener("pointermove", function (e) {
      if (!start) { return; }
      e.preventDefault();
      placeBox(draft, boxOf(start, frac(e)));
    });
    stage.addEventListener("pointerup", function (e) {
      if (!start) { return; }
      var p = frac(e), c = boxOf(start, p);
      start = null;
      if (c[2] - c[0] >= 0.03 && c[3] - c[1] >= 0.03) { searchWith(c, true); return; }
      draft.hidden = true;
      regionBoxes.forEach(function (b) {   // a tap on a found region searches it
        var r = parse(b.getAttribute("data-region"));
        if (p[0] >= r[0] && p[0] <= r[2] && p[1] >= r[1] && p[1] <= r[3]) { searchWith(r, true); }
      });
    });
    stage.addEventListener("pointercancel", function () { start = null; draft.hidden = true; });
    qimg.addEventListener("dragstart", function (e) { e.preventDefault(); });
  }
  var qstage = document.getElementById("query-stage");
  var refine = document.getElementById("refine-form");
  if (qstage && refine) { refineResults(qstage, refine); }

  // ---- the search form
  var form = document.getElementById("search-form");
  if (!form) { return; }
  var input = document.getElementById("file");
  var drop = document.getElementById("drop");
  var preview = document.getElementById("preview");
  var img = document.getElementById("preview-img");
  var stage = document.getElementById("stage");
  var box = document.getElementById("crop-box");
  var cropField = document.getElementById("crop");
  var clearBtn = document.getElementById("crop-clear");
  var status = document.getElementById("crop-status");
  var urlField = document.getElementById("image_url");
  var problem = document.getElementById("client-error");
  var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10) || 0;
  var objectUrl = null;

  function say(msg) { problem.textContent = msg || ""; problem.hidden = !msg; }

  function clearCrop() {
    cropField.value = "";
    box.hidden = true;
    clearBtn.hidden = true;
    status.textContent = "Searching with the whole photo.";
  }

  function humanSize(n) {   // as the server says it: "10 MB", "29.3 KB"
    var units = [["MB", 1048576], ["KB", 1024]];
    for (var i = 0; i < units.length; i++) {
      if (n >= units[i][1]) { return (n / units[i][1]).toFixed(1).replace(/\.0$/, "") + " " + units[i][0]; }
    }
    return n + " bytes";
  }

  var searchBtn = document.getElementById("search-button");
  var NOT_A_PHOTO = "That file is not a photo we can open; choose a JPEG, PNG or WebP picture.";
  var checking = 0;   // which chosen file the page is checking (a newer choice wins)

  // a file that is not a picture is refused here, before anything is sent: by its type, then by
  // decoding it in an Image (a text file named .jpg fails there); Search stays off until it decodes
  function refuse(msg) {
    say(msg);
    preview.hidden = true;
    input.value = "";
    form.appendChild(searchBtn);  // back at the form's end
    searchBtn.disabled = false;   // a pasted address may still be searched
  }
  function show(file) {
    say("");
    if (!file) { preview.hidden = true; return; }
    if (file.type && file.type.indexOf("image/") !== 0) { refuse(NOT_A_PHOTO); return; }
    if (maxBytes && file.size > maxBytes) {
      refuse("That photo is too large (" + humanSize(file.size) + "); the limit is " +
             form.getAttribute("data-max-text") + ". Choose a smaller photo, or save it at a lower quality.");
      return;
    }
    if (objectUrl) { URL.revokeObjectURL(objectUrl); }
    objectUrl = URL.createObjectURL(file);
    var mine = ++checking;
    var probe = new Image();
    searchBtn.disabled = true;
    status.textContent = "Checking the photo…";
    probe.onload = function () {
      if (mine !== checking) { return; }
      searchBtn.disabled = false;
      img.src = probe.src;
      preview.hidden = false;
      preview.appendChild(searchBtn);   // Search right under the photo (on a phone, not a screen further down)
      if (urlField) { urlField.value = ""; }
      clearCrop();
      status.textContent = "";
    };
    probe.onerror = function () { if (mine === checking) { status.textContent = ""; refuse(NOT_A_PHOTO); } };
    probe.src = objectUrl;
  }

  function useFiles(files) {
    if (!files || !files.length) { return; }
    try {
      var dt = new DataTransfer();
      dt.items.add(files[0]);
      input.files = dt.files;
    } catch (e) { /* very old browsers: keep what the input has */ }
    show(input.files && input.files[0] ? input.files[0] : files[0]);
  }

  input.addEventListener("change", function () { show(input.files[0]); });

  ["dragenter", "dragover"].forEach(function (t) {
    drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (t) {
    drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.remove("over"); });
  });
  drop.addEventListener("drop", function (e) { useFiles(e.dataTransfer && e.dataTransfer.files); });
  // a photo dropped anywhere else on the page should not navigate away
  window.addEventListener("dragover", function (e) { e.preventDefault(); });
  window.addEventListener("drop", function (e) { e.preventDefault(); useFiles(e.dataTransfer && e.dataTransfer.files); });
  window.addEventListener("paste", function (e) {
    var files = e.clipboardData && e.clipboardData.files;
    if (files && files.length && files[0].type.indexOf("image/") === 0) { e.preventDefault(); useFiles(files); }
  });

  // ---- drawing the crop box (pointer events: mouse, touch and pen alike)
  var start = null;
  function frac(e) {
    var r = img.getBoundingClientRect();
    return [Math.max(0, Math.min(1, (e.clientX - r.left) / r.width)),
            Math.max(0, Math.min(1, (e.clientY - r.top) / r.height))];
  }
  function current(a, b) {
    return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])];
  }
  stage.addEventListener("pointerdown", function (e) {
    if (e.button !== undefined && e.button !== 0) { return; }
    e.preventDefault();
    start = frac(e);
    if (stage.setPointerCapture) { try { stage.setPointerCapture(e.pointerId); } catch (err) { /* ignore */ } }
    placeBox(box, [start[0], start[1], start[0], start[1]]);
  });
  stage.addEventListener("pointermove", function (e) {
    if (!start) { return; }
    e.preventDefault();
    placeBox(box, current(start, frac(e)));
  });
  function finish(e) {
    if (!start) { return; }
    var c = current(start, frac(e));
    start = null;
    if (c[2] - c[0] < 0.03 || c[3] - c[1] < 0.03) { clearCrop(); return; }   // a click, not a box
    placeBox(box, c);
    cropField.value = c.map(function (v) { return v.toFixed(4); }).join(",");
    clearBtn.hidden = false;
    status.textContent = "Searching with the boxed part of the photo.";
  }
  stage.addEventListener("pointerup", finish);
  stage.addEventListener("pointercancel", function () { start = null; });
  clearBtn.addEventListener("click", clearCrop);
  img.addEventListener("dragstart", function (e) { e.preventDefault(); });

  form.addEventListener("submit", function (e) {
    var hasFile = input.files && input.files.length > 0;
    var hasUrl = urlField && urlField.value.trim() !== "";
    if (!hasFile && !hasUrl) {
      e.preventDefault();
      say("Choose a photo, drop one here, or paste an image address.");
      return;
    }
    if (hasFile && maxBytes && input.files[0].size > maxBytes) { e.preventDefault(); show(input.files[0]); return; }
    if (!hasFile) { cropField.value = ""; }   // the box belongs to the uploaded photo
    document.getElementById("search-button").disabled = true;
    document.getElementById("search-button").textContent = "Searching…";
  });
  window.addEventListener("pageshow", function () {   // back button: enable the button again
    var b = document.getElementById("search-button");
    b.disabled = false;
    b.textContent = "Search";
  });
})();
