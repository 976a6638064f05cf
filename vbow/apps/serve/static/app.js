// The upload page: send the photo to POST /search, list the matches, draw the best verified
// match's outline on the photo. No external scripts, fonts or network.
(function () {
  "use strict";
  const input = document.getElementById("photo");
  const drop = document.getElementById("drop");
  const statusEl = document.getElementById("status");
  const canvas = document.getElementById("canvas");
  const caption = document.getElementById("caption");
  const list = document.getElementById("results");
  const MAX_W = 640;
  const OUTLINE = "#ff00ff";

  function setStatus(text, cls) {
    statusEl.textContent = text;
    statusEl.className = "status" + (cls ? " " + cls : "");
  }

  function loadImage(file) {
    return new Promise(function (resolve, reject) {
      const url = URL.createObjectURL(file);
      const img = new Image();
      img.onload = function () { resolve(img); };
      img.onerror = function () { reject(new Error("the browser cannot show this file")); };
      img.src = url;
    });
  }

  function drawPhoto(img) {
    const scale = Math.min(1, MAX_W / img.naturalWidth);
    canvas.width = Math.round(img.naturalWidth * scale);
    canvas.height = Math.round(img.naturalHeight * scale);
    canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
    return scale;
  }

  function drawOutline(points, scale) {
    const ctx = canvas.getContext("2d");
    ctx.save();
    ctx.strokeStyle = OUTLINE;
    ctx.lineWidth = 4;
    ctx.lineJoin = "round";
    ctx.beginPath();
    points.forEach(function (p, i) {
      const x = p[0] * scale, y = p[1] * scale;
      if (i === 0) { ctx.moveTo(x, y); } else { ctx.lineTo(x, y); }
    });
    ctx.closePath();
    ctx.stroke();
    ctx.restore();
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function showMatches(answer) {
    list.textContent = "";
    answer.results.forEach(function (m) {
      const li = el("li", m.verified ? "verified" : "");
      li.dataset.key = m.key;
      li.dataset.verified = String(m.verified);
      const img = el("img");
      img.alt = "catalog image of " + m.key;
      img.src = m.thumbnail;
      img.onerror = function () { img.removeAttribute("src"); };
      li.appendChild(img);
      const text = el("div");
      const title = el("div");
      title.appendChild(el("span", "key", m.key));
      title.appendChild(el("span", m.verified ? "badge" : "badge no",
                           m.verified ? "verified" : "not verified"));
      text.appendChild(title);
      const meta = Object.keys(m.metadata || {}).map(function (k) {
        return k + ": " + JSON.stringify(m.metadata[k]);
      }).join(", ");
      text.appendChild(el("div", "meta", "score " + m.score.toFixed(2) + " · " + m.inliers +
                          " inliers" + (meta ? " · " + meta : "")));
      li.appendChild(text);
      list.appendChild(li);
    });
  }

  async function search(file) {
    if (!file) { return; }
    list.textContent = "";
    canvas.dataset.outline = "";
    setStatus("Searching…");
    let img, scale;
    try {
      img = await loadImage(file);
      scale = drawPhoto(img);
    } catch (e) {
      scale = null;
    }
    const form = new FormData();
    form.append("image", file);
    form.append("top_k", "5");
    let answer;
    try {
      const res = await fetch("/search", { method: "POST", body: form });
      answer = await res.json();
      if (!res.ok) {
        setStatus("Error: " + (answer.detail || answer.title || res.status), "nomatch");
        return;
      }
    } catch (e) {
      setStatus("Error: " + e.message, "nomatch");
      return;
    }
    showMatches(answer);
    const best = answer.results.find(function (m) { return m.verified; });
    if (!best) {
      setStatus("No match found", "nomatch");
      caption.textContent = "";
      return;
    }
    setStatus("Found " + best.key + " (" + best.inliers + " matching points)", "found");
    if (best.outline && scale !== null) {
      drawOutline(best.outline, scale);
      canvas.dataset.outline = best.key;
      caption.textContent = "Outline of " + best.key + " in your photo";
    } else {
      caption.textContent = "";
    }
    document.body.dataset.state = "done";
  }

  input.addEventListener("change", function () {
    document.body.dataset.state = "busy";
    search(input.files[0]).finally(function () { document.body.dataset.state = "done"; });
  });
  ["dragenter", "dragover"].forEach(function (t) {
    drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (t) {
    drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.remove("over"); });
  });
  drop.addEventListener("drop", function (e) {
    const file = e.dataTransfer && e.dataTransfer.files[0];
    document.body.dataset.state = "busy";
    search(file).finally(function () { document.body.dataset.state = "done"; });
  });
})();
