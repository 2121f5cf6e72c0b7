// Every dashboard page: a banner while the engine drains (operators hold it for a deploy or an
// incident: runs are accepted, no new step starts), read from /status at load and every 15 seconds.

const banner = document.getElementById("engine-banner");
const POLL_MS = 15000;

async function check() {
  let engine;
  try {
    const answer = await fetch("/status", { headers: { Accept: "application/json" } });
    if (!answer.ok) return;
    engine = (await answer.json()).engine ?? {};
  } catch {
    return; // unreachable: the live status in the header says so
  }
  banner.hidden = !engine.draining;
  if (engine.draining) {
    const since = new Date(engine.draining_since).toLocaleString();
    banner.textContent = `The engine is draining since ${since}: runs are accepted, and no new step starts until it resumes.`;
  }
}

if (banner) {
  check();
  setInterval(check, POLL_MS);
}
