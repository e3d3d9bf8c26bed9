// The big screen: each server-sent event says the hall's figures changed; the screen fetches its
// server-rendered, masked body again. EventSource reconnects by itself when the collector restarts.
"use strict";
(function () {
  const root = document.getElementById("board");
  const live = document.getElementById("live");
  async function refresh() {
    try {
      const answer = await fetch(root.dataset.fragment, {cache: "no-store"});
      if (answer.ok) root.innerHTML = await answer.text();
    } catch (error) { /* the next event tries again */ }
  }
  const source = new EventSource(root.dataset.events);
  source.onopen = () => { live.dataset.state = "live"; };
  source.onerror = () => { live.dataset.state = "reconnecting"; };
  source.onmessage = () => { refresh(); };
})();
