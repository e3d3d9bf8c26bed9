// The dashboard follows the hall's figures: each server-sent event says they changed; the page
// fetches its server-rendered body again (escaped there) and keeps the chosen period tab.
"use strict";
(function () {
  const root = document.getElementById("dashboard");
  const live = document.getElementById("live");
  let tab = "today";

  function showTab(name) {
    tab = name;
    root.querySelectorAll("[data-tab]").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.tab === name)));
    root.querySelectorAll("[data-panel]").forEach((p) => { p.hidden = p.dataset.panel !== name; });
  }
  root.addEventListener("click", (event) => {
    const button = event.target.closest("[data-tab]");
    if (button) showTab(button.dataset.tab);
  });

  async function refresh(data) {
    const answer = await fetch(root.dataset.fragment, {credentials: "same-origin", cache: "no-store"});
    if (!answer.ok) return;
    root.innerHTML = await answer.text();
    showTab(tab);
    document.getElementById("as-of").textContent = data.as_of;
    root.dispatchEvent(new CustomEvent("figures-updated", {detail: data}));
  }

  const source = new EventSource(root.dataset.events);
  source.onopen = () => { live.dataset.state = "live"; live.textContent = "实时"; };
  source.onerror = () => { live.dataset.state = "reconnecting"; live.textContent = "重新连接中"; };
  source.onmessage = (event) => { refresh(JSON.parse(event.data)); };
})();
