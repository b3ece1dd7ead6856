// dressfinder: progressive enhancement for the search form (the form works without it).
// Drag-and-drop / paste a photo, preview it, draw a box around the dress and adjust it (its
// corners and the box itself move by mouse, touch or pen; arrow keys move it, Shift+arrows resize
// it, Enter searches), check type and size before sending; on results pages, show the crop box and
// score bars, and search an adjusted box only when the shopper confirms ("Search this area").
(function () {
  "use strict";

  // Place a box given as [left, top, right, bottom] fractions of the photo, in pixels over the
  // photo itself (the stage around it can be wider than the scaled photo); an editable box's
  // shade (the photo dimmed outside it) follows.
  function placeBox(box, c) {
    var img = box.parentNode.querySelector("img");
    var x = img.offsetLeft, y = img.offsetTop, w = img.offsetWidth, h = img.offsetHeight;
    box.style.left = (x + c[0] * w) + "px";
    box.style.top = (y + c[1] * h) + "px";
    box.style.width = ((c[2] - c[0]) * w) + "px";
    box.style.height = ((c[3] - c[1]) * h) + "px";
    box.setAttribute("data-at", c.join(","));
    box.hidden = false;
    var shade = box.shade;
    if (shade) {
      shade.style.left = x + "px"; shade.style.top = y + "px"; shade.style.width = w + "px"; shade.style.height = h + "px";
      var hole = shade.firstChild;
      hole.style.left = (c[0] * 100) + "%"; hole.style.top = (c[1] * 100) + "%";
      hole.style.width = ((c[2] - c[0]) * 100) + "%"; hole.style.height = ((c[3] - c[1]) * 100) + "%";
      shade.hidden = false;
    }
  }
  function replaceBoxes() {
    document.querySelectorAll(".crop-box[data-at]").forEach(function (b) {
      if (!b.hidden) { placeBox(b, b.getAttribute("data-at").split(",").map(parseFloat)); }
    });
  }
  window.addEventListener("resize", replaceBoxes);

  var MIN = 0.04;    // the smallest box, a fraction of the photo's width and height
  var STEP = 0.02;   // one arrow key press
  function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }
  function cropText(c) { return c.map(function (v) { return v.toFixed(4); }).join(","); }

  // An adjustable box on a photo: drag outside it to draw a new one, drag inside it to move it,
  // drag a corner handle (a 44 px target) to resize it; focused, arrow keys move it, Shift+arrows
  // resize it (right and bottom edges), Enter confirms, Escape undoes. A change calls
  // onChange(box) once it is finished (a drag let go, a key), never while dragging; nothing is
  // searched until the page decides (a button, Enter).
  function CropEditor(stage, img, box, opts) {
    var ed = { c: null };
    box.classList.add("editable");
    box.tabIndex = 0;
    box.setAttribute("role", "group");
    box.setAttribute("aria-roledescription", "search area");
    var keys = document.createElement("span");
    keys.className = "sr";
    keys.id = box.id + "-keys";
    keys.textContent = "Drag the box or its corners to frame the dress. Arrow keys move it; Shift and arrow keys " +
                       "change its size; Enter searches this area.";
    stage.parentNode.insertBefore(keys, stage.nextSibling);
    box.setAttribute("aria-describedby", keys.id);
    ["nw", "ne", "sw", "se"].forEach(function (corner) {
      var h = document.createElement("span");
      h.className = "handle handle-" + corner;
      h.setAttribute("data-corner", corner);
      h.setAttribute("aria-hidden", "true");
      box.appendChild(h);
    });
    var shade = document.createElement("div");
    shade.className = "crop-shade";
    shade.setAttribute("aria-hidden", "true");
    shade.hidden = true;
    shade.appendChild(document.createElement("div")).className = "crop-hole";
    stage.insertBefore(shade, box);
    box.shade = shade;

    function show(c) {
      if (!c) { box.hidden = true; shade.hidden = true; return; }
      placeBox(box, c);
      box.setAttribute("aria-label", "Search area: " + Math.round(c[0] * 100) + " to " + Math.round(c[2] * 100) +
                       " % across, " + Math.round(c[1] * 100) + " to " + Math.round(c[3] * 100) + " % down");
    }
    ed.set = function (c, quiet) { ed.c = c ? c.slice() : null; show(ed.c); if (!quiet && opts.onChange) { opts.onChange(ed.c); } };
    ed.box = box;

    function frac(e) {
      var r = img.getBoundingClientRect();
      return [clamp((e.clientX - r.left) / r.width, 0, 1), clamp((e.clientY - r.top) / r.height, 0, 1)];
    }
    var drag = null;
    function dragged(d, p) {
      if (d.mode === "draw") {
        return [Math.min(d.start[0], p[0]), Math.min(d.start[1], p[1]), Math.max(d.start[0], p[0]), Math.max(d.start[1], p[1])];
      }
      var c = d.from.slice();
      if (d.mode === "move") {
        var dx = clamp(p[0] - d.start[0], -c[0], 1 - c[2]), dy = clamp(p[1] - d.start[1], -c[1], 1 - c[3]);
        return [c[0] + dx, c[1] + dy, c[2] + dx, c[3] + dy];
      }
      // a corner: the opposite one stays; the box never gets smaller than MIN
      var q = [p[0] + d.offset[0], p[1] + d.offset[1]];
      if (d.corner.indexOf("w") >= 0) { c[0] = clamp(q[0], 0, c[2] - MIN); } else { c[2] = clamp(q[0], c[0] + MIN, 1); }
      if (d.corner.indexOf("n") >= 0) { c[1] = clamp(q[1], 0, c[3] - MIN); } else { c[3] = clamp(q[1], c[1] + MIN, 1); }
      return c;
    }
    stage.addEventListener("pointerdown", function (e) {
      if ((e.button !== undefined && e.button !== 0) || drag) { return; }
      var corner = e.target.getAttribute && e.target.getAttribute("data-corner");
      var mode = corner && ed.c ? "resize" : (ed.c && e.target === box ? "move" : "draw");
      var p = frac(e), offset = [0, 0];
      if (mode === "resize") {   // the corner stays under the finger (a 44 px target is not the corner itself)
        offset = [(corner.indexOf("w") >= 0 ? ed.c[0] : ed.c[2]) - p[0], (corner.indexOf("n") >= 0 ? ed.c[1] : ed.c[3]) - p[1]];
      }
      drag = { mode: mode, corner: corner, start: p, offset: offset, from: ed.c ? ed.c.slice() : null,
               x: e.clientX, y: e.clientY, id: e.pointerId, moved: false, now: ed.c, target: e.target };
      e.preventDefault();
      if (stage.setPointerCapture) { try { stage.setPointerCapture(e.pointerId); } catch (err) { /* ignore */ } }
    });
    stage.addEventListener("pointermove", function (e) {
      if (!drag || e.pointerId !== drag.id) { return; }
      e.preventDefault();
      if (!drag.moved && Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) < 4) { return; }
      drag.moved = true;
      drag.now = dragged(drag, frac(e));
      show(drag.now);
    });
    stage.addEventListener("pointerup", function (e) {
      if (!drag || e.pointerId !== drag.id) { return; }
      var d = drag;
      drag = null;
      if (d.moved) { d.now = dragged(d, frac(e)); }
      var tooSmall = d.now && (d.now[2] - d.now[0] < 0.03 || d.now[3] - d.now[1] < 0.03);
      if (!d.moved || tooSmall) {   // a tap (a found region's box takes it as a click) or a slip: what was there stays
        show(d.from);
        if (!d.moved && opts.onTap) { opts.onTap(frac(e), d.target); }
        return;
      }
      ed.set(d.now);
    });
    stage.addEventListener("pointercancel", function () { if (drag) { show(drag.from); drag = null; } });
    img.addEventListener("dragstart", function (e) { e.preventDefault(); });

    box.addEventListener("keydown", function (e) {
      if (!ed.c) { return; }
      var dx = { ArrowLeft: -1, ArrowRight: 1 }[e.key] || 0, dy = { ArrowUp: -1, ArrowDown: 1 }[e.key] || 0;
      if (dx || dy) {
        e.preventDefault();
        var c = ed.c.slice();
        if (e.shiftKey) {
          c[2] = clamp(c[2] + dx * STEP, c[0] + MIN, 1);
          c[3] = clamp(c[3] + dy * STEP, c[1] + MIN, 1);
        } else {
          var mx = clamp(dx * STEP, -c[0], 1 - c[2]), my = clamp(dy * STEP, -c[1], 1 - c[3]);
          c = [c[0] + mx, c[1] + my, c[2] + mx, c[3] + my];
        }
        ed.set(c);
      } else if (e.key === "Enter") {
        e.preventDefault();
        if (opts.onConfirm) { opts.onConfirm(ed.c); }
      } else if (e.key === "Escape" && opts.onEscape) {
        e.preventDefault();
        opts.onEscape();
      }
    });
    return ed;
  }

  // ---- results and product pages
  document.querySelectorAll("[data-score]").forEach(function (el) {
    var s = Math.max(0, Math.min(1, parseFloat(el.getAttribute("data-score")) || 0));
    el.style.width = (s * 100).toFixed(1) + "%";
  });
  var shown = document.getElementById("query-crop");
  if (shown && !document.getElementById("refine-form")) {
    var showIt = function () { placeBox(shown, shown.getAttribute("data-crop").split(",").map(parseFloat)); };
    var qimg = document.getElementById("query-img");
    if (qimg.complete) { showIt(); } else { qimg.addEventListener("load", showIt); }
  }

  // ---- results page: the other regions found, a box of her own, the whole photo. The photo is
  // sent again (the page's copy of it) with the box: her box always overrides detection. Moving or
  // resizing the box searches nothing until she confirms ("Search this area", or Enter on the box).
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
      document.getElementById("refine-crop").value = crop ? cropText(crop) : "";
      document.getElementById("refine-detect").value = detect ? "true" : "false";
      document.getElementById("query-caption").textContent = "Searching…";
      if (areaBtn) { areaBtn.disabled = true; areaBtn.textContent = "Searching…"; }
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

    // the box searched (if any) becomes adjustable; without one, a box of her own is drawn
    var box = document.getElementById("query-crop");
    if (!box) {
      box = document.createElement("div");
      box.className = "crop-box";
      box.id = "draft-box";
      box.hidden = true;
      stage.appendChild(box);
    }
    var searched = box.getAttribute("data-crop") ? parse(box.getAttribute("data-crop")) : null;
    var areaBtn = document.getElementById("search-area");
    var startBtn = document.getElementById("area-start");
    var same = function (a, b) { return !!a && !!b && a.every(function (v, i) { return Math.abs(v - b[i]) < 5e-4; }); };
    var editor = CropEditor(stage, qimg, box, {
      onChange: function (c) {
        var changed = !!c && !same(c, searched);
        areaBtn.hidden = !changed;
        if (startBtn) { startBtn.hidden = !!c; }
        box.setAttribute("data-changed", changed ? "true" : "false");
      },
      onConfirm: function (c) { if (c) { searchWith(c, true); } },
      onTap: function (p, target) {   // a tap on a found region searches it (the drag's capture keeps its click)
        var region = target.closest && target.closest(".region-box");
        if (region) { searchWith(parse(region.getAttribute("data-region")), true); }
      },
      onEscape: function () { editor.set(searched); }
    });
    var start = function () { if (searched) { editor.set(searched, true); } else if (startBtn) { startBtn.hidden = false; } };
    if (qimg.complete) { start(); } else { qimg.addEventListener("load", start); }
    areaBtn.addEventListener("click", function () { if (editor.c) { searchWith(editor.c, true); } });
    if (startBtn) {
      startBtn.addEventListener("click", function () { editor.set([0.2, 0.15, 0.8, 0.85]); box.focus(); });
    }
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
    editor.set(null);
    status.textContent = "Searching with the whole photo.";
  }
  // Search's own words: "Search this area" once a box is drawn (the same button confirms it)
  function searchLabel() { return cropField.value ? "Search this area" : "Search"; }

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

  // ---- the crop box (pointer events: mouse, touch and pen alike; the keyboard on the box)
  var startBtn = document.getElementById("crop-start");
  var editor = CropEditor(stage, img, box, {
    onChange: function (c) {
      cropField.value = c ? cropText(c) : "";
      clearBtn.hidden = !c;
      startBtn.hidden = !!c;
      searchBtn.textContent = searchLabel();
      if (c) { status.textContent = "Search will use the boxed part of the photo."; }
    },
    onConfirm: function () { if (form.requestSubmit) { form.requestSubmit(searchBtn); } else { searchBtn.click(); } },
    onEscape: function () { clearCrop(); startBtn.focus(); }
  });
  clearBtn.addEventListener("click", clearCrop);
  startBtn.addEventListener("click", function () { editor.set([0.15, 0.1, 0.85, 0.9]); box.focus(); });

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
    b.textContent = searchLabel();
  });
})();
