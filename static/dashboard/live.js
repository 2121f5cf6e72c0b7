// One websocket to the realtime server (DESIGN §9). It reconnects with a growing pause (0.5 s to 5 s),
// resumes the runs the page shows from the last seq it has of each, drops events it already has
// (the server should not send them twice; a page must not apply them twice either), and pings to
// notice a connection that died silently. The status line in the header says where it stands.

const FIRST_PAUSE_MS = 500;
const LONGEST_PAUSE_MS = 5000;
const PING_EVERY_MS = 25000;
const PONG_WITHIN_MS = 10000;
const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_FORBIDDEN = 4403;

const STATUS_TEXT = {
  connecting: "Connecting to live updates…",
  live: "Live",
  reconnecting: "Connection lost; reconnecting…",
  // 4401: the login session ended (logged out elsewhere, or ended from the Account page of another device).
  "signed-out": "Your session was ended — ",
  forbidden: "Live updates are not available to you here.",
};

function showStatus(state) {
  const element = document.getElementById("live-status");
  if (!element) return;
  element.dataset.state = state;
  element.textContent = STATUS_TEXT[state];
  if (state === "signed-out") {
    const login = document.createElement("a");
    login.href = `/accounts/login/?next=${encodeURIComponent(location.pathname + location.search)}`;
    login.textContent = "log in again";
    element.append(login);
  }
}

export class LiveConnection {
  /**
   * path: "/ws/dashboard/?workspace=…", "/ws/workflows/<id>/" or "/ws/runs/<id>/".
   * onEvent(event): an event envelope newer than what the page has of its run, in seq order.
   * onSubscribed(reconnected): the server accepted the connection. Events arriving until the promise
   *   it returns settles wait, then follow (a page reloading its lists after a gap).
   * onResumed(run, seq): the server finished replaying a run's log after a resume.
   * run: the run of a /ws/runs/<id>/ connection: it resumes while connecting (?after_seq=N).
   * shown(): ids of the runs the page shows, resumed after a reconnect (default: every run seen).
   * onWorkflowEvent(event): a workflow or workspace event (workflow.updated, workspace.runs_paused, …):
   *   its seq is null, as the server neither logs nor replays them, so none is missed or repeated here.
   */
  constructor(path, { onEvent, onSubscribed, onResumed, onWorkflowEvent, run, shown } = {}) {
    Object.assign(this, { path, onEvent, onSubscribed, onResumed, onWorkflowEvent, run, shown });
    this.seqs = new Map();
    this.held = [];
    this.holds = 0;
    this.pause = FIRST_PAUSE_MS;
    this.connected = false;
    this.connect();
  }

  seq(runId) {
    return this.seqs.get(runId) ?? 0;
  }

  // Events wait until `promise` settles, then are delivered in the order they came.
  hold(promise) {
    this.holds += 1;
    const release = () => {
      this.holds -= 1;
      if (this.holds === 0) this.held.splice(0).forEach((event) => this.deliver(event));
    };
    promise.then(release, release);
    return promise;
  }

  connect() {
    const url = new URL(this.path, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    if (this.run) url.searchParams.set("after_seq", this.seq(this.run));
    showStatus(this.connected ? "reconnecting" : "connecting");
    const socket = new WebSocket(url);
    socket.onmessage = (message) => this.receive(JSON.parse(message.data));
    socket.onclose = (event) => this.closed(event.code);
    this.socket = socket;
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  receive(message) {
    switch (message.type) {
      case "subscribed":
        this.subscribed();
        return;
      case "pong":
        clearTimeout(this.pongTimer);
        return;
      case "resumed":
        this.afterHolds(() => this.onResumed?.(message.run, message.seq));
        return;
      case "error":
        console.warn("live updates:", message.detail);
        return;
    }
    if (message.seq === null && typeof message.type === "string") {
      // After a page's reload in progress, as run events: what it reloads must not overwrite them.
      if (this.onWorkflowEvent) this.afterHolds(() => this.onWorkflowEvent(message));
      return;
    }
    if (typeof message.run !== "string" || typeof message.seq !== "number") return;
    if (this.holds > 0) this.held.push(message);
    else this.deliver(message);
  }

  afterHolds(callback) {
    if (this.holds > 0) this.held.push(callback);
    else callback();
  }

  deliver(item) {
    if (typeof item === "function") {
      item();
      return;
    }
    if (item.seq <= this.seq(item.run)) return;
    this.seqs.set(item.run, item.seq);
    this.onEvent?.(item);
  }

  subscribed() {
    const reconnected = this.connected;
    this.connected = true;
    this.pause = FIRST_PAUSE_MS;
    showStatus("live");
    this.pingTimer = setInterval(() => this.ping(), PING_EVERY_MS);
    if (reconnected && !this.run) {
      const ids = this.shown ? [...this.shown()] : [...this.seqs.keys()];
      for (const id of ids) {
        if (this.seq(id) > 0) this.send({ action: "resume", run: id, after_seq: this.seq(id) });
      }
    }
    const reloaded = this.onSubscribed?.(reconnected);
    if (reloaded instanceof Promise) this.hold(reloaded);
  }

  ping() {
    this.send({ action: "ping" });
    clearTimeout(this.pongTimer);
    this.pongTimer = setTimeout(() => this.drop(), PONG_WITHIN_MS);
  }

  // A connection that stopped answering: forget it without waiting for its closing handshake.
  drop() {
    const socket = this.socket;
    socket.onclose = null;
    socket.onmessage = null;
    socket.close();
    this.closed(0);
  }

  closed(code) {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    if (code === CLOSE_UNAUTHENTICATED) {
      showStatus("signed-out");
      return;
    }
    if (code === CLOSE_FORBIDDEN) {
      showStatus("forbidden");
      return;
    }
    showStatus(this.connected ? "reconnecting" : "connecting");
    setTimeout(() => this.connect(), this.pause);
    this.pause = Math.min(this.pause * 2, LONGEST_PAUSE_MS);
  }
}
