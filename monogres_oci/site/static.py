"""The stylesheet and the script every page of the site shares (no external asset)."""

STYLE = """\
:root { color-scheme: light dark; --line: #8884; --muted: #888; }
body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 78rem; padding: 1rem 2rem; }
h1 { margin-bottom: .2rem; }
code, pre { font: 13px/1.4 ui-monospace, monospace; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
th, td { border-bottom: 1px solid var(--line); padding: .3rem .5rem; text-align: left;
         vertical-align: top; }
th { position: sticky; top: 0; background: Canvas; }
.filters { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; }
.filters input { min-width: 18rem; }
#count { color: var(--muted); margin: 0; }
tr[hidden] { display: none; }
pre.snippet { border: 1px solid var(--line); padding: .6rem; overflow-x: auto; position: relative; }
pre.snippet button { position: absolute; top: .3rem; right: .3rem; font-size: 12px; }
.platform { border-left: 3px solid var(--line); padding-left: 1rem; margin: 1rem 0; }
.licence { color: var(--muted); }
article.version { border-top: 2px solid var(--line); margin-top: 2rem; }
"""

SCRIPT = """\
"use strict";
// The catalog page: a search box and one select per facet narrow the rows in place.
(function () {
  const table = document.getElementById("catalog");
  if (!table) return;
  const rows = Array.from(table.querySelectorAll("tbody tr.artifact"));
  const search = document.getElementById("search");
  const selects = Array.from(document.querySelectorAll("select[data-facet]"));
  const count = document.getElementById("count");
  function matches(row) {
    const words = search.value.toLowerCase().split(/\\s+/).filter(Boolean);
    const text = row.dataset.text + " " + row.dataset.name.toLowerCase();
    if (!words.every((w) => text.includes(w))) return false;
    return selects.every((s) => {
      if (!s.value) return true;
      const have = row.dataset[s.dataset.facet] || "";
      return s.dataset.facet === "arch" ? have.split(" ").includes(s.value) : have === s.value;
    });
  }
  function update() {
    let shown = 0;
    for (const row of rows) {
      const ok = matches(row);
      row.hidden = !ok;
      if (ok) shown += 1;
    }
    count.textContent = shown + " of " + rows.length + " images";
    const params = new URLSearchParams();
    if (search.value) params.set("q", search.value);
    for (const s of selects) if (s.value) params.set(s.dataset.facet, s.value);
    const query = params.toString();
    history.replaceState(null, "", query ? "#" + query : location.pathname);
  }
  // A link may carry the search: index.html#q=postgis&distro=trixie
  const given = new URLSearchParams(location.hash.slice(1));
  if (given.has("q")) search.value = given.get("q");
  for (const s of selects) if (given.has(s.dataset.facet)) s.value = given.get(s.dataset.facet);
  search.addEventListener("input", update);
  for (const s of selects) s.addEventListener("change", update);
  update();
})();
// Every snippet gets a button that selects it (and copies it where the browser allows).
for (const pre of document.querySelectorAll("pre.snippet")) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "copy";
  button.addEventListener("click", () => {
    const range = document.createRange();
    range.selectNodeContents(pre.firstChild);
    const selection = getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    if (navigator.clipboard) navigator.clipboard.writeText(pre.firstChild.textContent).catch(() => {});
  });
  pre.appendChild(button);
}
"""
