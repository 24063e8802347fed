// Review page: selection, keyboard, type-ahead, photo viewer. No build step, no network
// but this server; every change is a normal form POST carrying the page's CSRF token.
(function () {
  "use strict";
  const page = document.body.dataset.page;
  const tiles = () => Array.from(document.querySelectorAll(".tile"));
  const box = (tile) => tile.querySelector("input[type=checkbox]");

  function refresh() {
    tiles().forEach((t) => { const b = box(t); if (b) t.classList.toggle("selected", b.checked); });
    const count = document.getElementById("selected-count");
    if (count) count.textContent = tiles().filter((t) => box(t) && box(t).checked).length + " selected";
  }
  function toggle(tile) { const b = box(tile); if (b) { b.checked = !b.checked; refresh(); } }

  document.addEventListener("change", (e) => { if (e.target.matches(".tile input[type=checkbox]")) refresh(); });

  // Clicking a face's picture opens its photo; clicking elsewhere on a tile selects it.
  const viewer = document.getElementById("viewer");
  document.addEventListener("click", (e) => {
    const link = e.target.closest(".photo-link");
    const tile = e.target.closest(".tile");
    if (link && viewer) { e.preventDefault(); show(link.dataset.photo); return; }
    if (!tile || e.target.closest("a, button, input, label")) return;
    if (tile.classList.contains("face") && e.target.tagName === "IMG" && viewer) { show(tile.dataset.photo); return; }
    toggle(tile);
    tile.focus();
  });
  function show(src) {
    document.getElementById("viewer-img").src = src;
    viewer.showModal();
  }

  // A button that asks first.
  document.addEventListener("submit", (e) => {
    const button = e.submitter;
    if (button && button.dataset.confirm && !window.confirm(button.dataset.confirm)) e.preventDefault();
    // a suggestion button moves only its own face
    if (button && button.classList.contains("suggest")) {
      tiles().forEach((t) => { const b = box(t); if (b) b.checked = t.dataset.id === button.dataset.face; });
    }
  });

  // Type-ahead on names for "Move to".
  const to = document.getElementById("move-to");
  const list = document.getElementById("person-names");
  let asked = "";
  if (to && list) {
    to.addEventListener("input", () => {
      const q = to.value.trim();
      if (!q || q === asked || /^\d/.test(q)) return;
      asked = q;
      fetch("/api/names?q=" + encodeURIComponent(q), { credentials: "same-origin" })
        .then((r) => (r.ok ? r.json() : []))
        .then((names) => {
          list.replaceChildren(...names.map((p) => {
            const o = document.createElement("option");
            o.value = p.id + " · " + p.name;
            return o;
          }));
        })
        .catch(() => {});
    });
  }

  // Keyboard: arrows move between tiles, space selects, m merge, r rename, n not this
  // person, u undo. Keys typed into a field are left alone.
  function move(dx, dy) {
    const all = tiles();
    if (!all.length) return;
    const current = all.indexOf(document.activeElement);
    if (current < 0) { all[0].focus(); return; }
    let next = current + dx;
    if (dy) {
      const top = all[current].offsetTop;
      const perRow = all.filter((t) => t.offsetTop === top).length || 1;
      next = current + dy * perRow;
    }
    if (next >= 0 && next < all.length) { all[next].focus(); all[next].scrollIntoView({ block: "nearest" }); }
  }
  function submit(id, buttonId) {
    const form = document.getElementById(id);
    if (!form) return;
    const button = buttonId ? document.getElementById(buttonId) : null;
    form.requestSubmit(button || undefined);
  }
  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, textarea, select, dialog") || e.ctrlKey || e.metaKey || e.altKey) return;
    const tile = e.target.closest(".tile");
    switch (e.key) {
      case "ArrowRight": move(1, 0); break;
      case "ArrowLeft": move(-1, 0); break;
      case "ArrowDown": move(0, 1); break;
      case "ArrowUp": move(0, -1); break;
      case " ": if (tile) toggle(tile); else return; break;
      case "Enter": if (tile && tile.dataset.href) window.location = tile.dataset.href; else return; break;
      case "m": if (page === "grid") submit("merge-form"); else return; break;
      case "r": { const input = document.getElementById("rename-input"); if (input) { input.focus(); input.select(); } else return; break; }
      case "n": if (page === "person") submit("faces-form", "reject-button"); else return; break;
      case "u": submit("undo-form"); break;
      default: return;
    }
    e.preventDefault();
  });
  refresh();
})();
