// The service's web page: submit prove / formalize jobs, follow one live, list and cancel jobs.
//
// Everything the server sends (statements, proof states, proofs, error details) is shown through
// textContent or attribute values set with setAttribute/title, never parsed as markup: the page
// displays text written by whoever submitted a job. No HTML-parsing DOM sink is used anywhere
// (tests/service/test_web_static.py checks), so no server string can become markup.
//
// A job's events come over `GET /v1/jobs/{id}/events` (text/event-stream). EventSource cannot send
// an Authorization header, so the stream is always read with fetch() and parsed here (one code path
// with or without a token); on a dropped connection it resumes from the last seen event id.

const TOKEN_KEY = "llemma-prover.token";
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const CANCELLABLE = new Set(["queued", "running"]);
const MAX_TREE_NODES = 2000;
const MAX_LOG_LINES = 500;
const RECONNECT_MS = 1000;

const $ = (id) => {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`the page has no #${id}`);
  return element;
};

// The API lives next to the page: the page is served at the service root (`/`), its assets under `static/`.
const API_ROOT = new URL(".", window.location.href.replace(/\/static\/.*$/, "/"));
const api = (path) => new URL(path.replace(/^\//, ""), API_ROOT).toString();

// ---------------------------------------------------------------- token

function token() {
  try {
    return window.sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return ""; // storage disabled: run without a token
  }
}

function setToken(value) {
  try {
    if (value) window.sessionStorage.setItem(TOKEN_KEY, value);
    else window.sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled: nothing to keep
  }
  showTokenStatus();
}

function showTokenStatus() {
  $("token-status").textContent = token() ? "token set" : "no token";
}

function headers(extra = {}) {
  const result = { Accept: "application/json", ...extra };
  const value = token();
  if (value) result.Authorization = `Bearer ${value}`;
  return result;
}

// ---------------------------------------------------------------- errors

class ApiError extends Error {
  constructor(status, detail, retryAfter) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

// FastAPI answers `{detail: "reason"}`, or for a body that fails validation `{detail: [{loc, msg}, ...]}`.
function describeDetail(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((item) => {
        if (item && typeof item === "object") {
          const where = Array.isArray(item.loc) ? item.loc.filter((part) => part !== "body").join(".") : "";
          const message = typeof item.msg === "string" ? item.msg : JSON.stringify(item);
          return where ? `${where}: ${message}` : message;
        }
        return String(item);
      })
      .join("; ");
  }
  if (detail === undefined || detail === null) return "";
  return JSON.stringify(detail);
}

async function errorFrom(response) {
  let detail = "";
  const text = await response.text().catch(() => "");
  try {
    detail = describeDetail(JSON.parse(text).detail);
  } catch {
    detail = text.slice(0, 2000);
  }
  return new ApiError(response.status, detail || response.statusText, response.headers.get("Retry-After"));
}

const TITLES = {
  401: "Not authorised (401): set a valid API token above.",
  403: "Forbidden (403): this job belongs to another token.",
  404: "Not found (404).",
  409: "Conflict (409).",
  413: "Request too large (413).",
  422: "Refused (422):",
  429: "Too many jobs (429):",
};

function showError(error) {
  let title;
  let detail;
  if (error instanceof ApiError) {
    title = TITLES[error.status] || `Error ${error.status}:`;
    detail = error.detail;
    if (error.status === 429 && error.retryAfter) detail = `${detail} (retry after ${error.retryAfter} s)`;
  } else {
    title = "Could not reach the server:";
    detail = error && error.message ? error.message : String(error);
  }
  $("error-title").textContent = title;
  $("error-detail").textContent = detail;
  $("error").dataset.status = error instanceof ApiError ? String(error.status) : "network";
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error-title").textContent = "";
  $("error-detail").textContent = "";
  delete $("error").dataset.status;
}

async function request(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(api(path), init);
  if (!response.ok) throw await errorFrom(response);
  return response.status === 204 ? null : response.json();
}

// ---------------------------------------------------------------- small DOM helpers

function element(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

function firstLine(text, limit = 120) {
  const line = String(text ?? "").split("\n").find((part) => part.trim() !== "") ?? "";
  return line.length > limit ? `${line.slice(0, limit - 1)}…` : line;
}

// The line a reader wants first from a proof state: its (first) goal, else its first line.
function goalLine(text, limit = 120) {
  const lines = String(text ?? "").split("\n");
  const goal = lines.find((part) => part.trimStart().startsWith("⊢"));
  return goal === undefined ? firstLine(text, limit) : firstLine(goal.trim(), limit);
}

function formatSeconds(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  return value < 60 ? `${value.toFixed(1)} s` : `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
}

function formatTime(epochSeconds) {
  if (typeof epochSeconds !== "number") return "";
  return new Date(epochSeconds * 1000).toLocaleString();
}

// ---------------------------------------------------------------- SSE over fetch

// Parses a text/event-stream body as the HTML standard says (fields `event`, `data`, `id`; comments
// and `retry` ignored), calling onEvent({type, data, id}) for each complete event.
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.reset();
  }

  reset() {
    this.type = "";
    this.data = [];
    this.id = null;
  }

  push(chunk) {
    this.buffer += chunk;
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (match === null) break;
      // A lone trailing CR may be the first half of CRLF: wait for the next chunk.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      this.line(line);
    }
  }

  line(line) {
    if (line === "") {
      if (this.data.length > 0 || this.type) {
        this.onEvent({ type: this.type || "message", data: this.data.join("\n"), id: this.id });
      }
      this.reset();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.type = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.id = value;
  }
}

// Follows one job's event stream until its `finished` event, or until stop() is called.
class JobStream {
  constructor(jobId, onEvent, onStatus) {
    this.jobId = jobId;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.lastId = 0;
    this.done = false;
    this.controller = null;
  }

  stop() {
    this.done = true;
    if (this.controller) this.controller.abort();
  }

  async run() {
    while (!this.done) {
      this.controller = new AbortController();
      try {
        const url = api(`v1/jobs/${encodeURIComponent(this.jobId)}/events?after=${this.lastId}`);
        const response = await fetch(url, {
          headers: headers({ Accept: "text/event-stream" }),
          signal: this.controller.signal,
          cache: "no-store",
        });
        if (!response.ok) {
          const error = await errorFrom(response);
          // A refusal will not change by asking again; a server error might.
          if (error.status < 500) {
            this.done = true;
            throw error;
          }
          this.onStatus(`stream error ${error.status}; retrying`);
        } else {
          this.onStatus("live");
          await this.read(response.body);
          if (!this.done) this.onStatus("reconnecting");
        }
      } catch (error) {
        if (this.done) {
          if (error instanceof ApiError) throw error;
          return;
        }
        this.onStatus("connection lost; reconnecting");
      }
      if (!this.done) await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
  }

  async read(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser((event) => {
      const seq = Number.parseInt(event.id ?? "", 10);
      if (Number.isFinite(seq)) {
        if (seq <= this.lastId) return; // already seen before a reconnect
        this.lastId = seq;
      }
      let data;
      try {
        data = event.data ? JSON.parse(event.data) : {};
      } catch {
        data = { text: event.data };
      }
      if (this.done) return;
      this.onEvent(event.type, data, seq);
      if (event.type === "finished") this.stop();
    });
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(decoder.decode(value, { stream: true }));
        if (this.done) break;
      }
      parser.push(decoder.decode());
    } finally {
      reader.cancel().catch(() => {});
    }
  }
}

// ---------------------------------------------------------------- the live job view

let current = null; // {id, stream, nodes: Map, count}

function resetJobView(job) {
  $("job").hidden = false;
  $("job-id").textContent = job.id;
  $("job-kind").textContent = job.kind ?? "";
  for (const id of ["expansions", "nodes", "frontier", "candidates", "lean-calls", "elapsed"]) {
    $(`counter-${id}`).textContent = "–";
  }
  $("counter-expansions").dataset.updates = "0";
  $("tree").replaceChildren();
  $("tree-count").textContent = "";
  $("best-open").replaceChildren();
  $("event-log").replaceChildren();
  $("verdict").hidden = true;
  for (const id of ["verdict-status", "verdict-judge", "verdict-reason", "verdict-proof", "job-result"]) {
    $(id).textContent = "";
  }
  $("verdict").removeAttribute("data-status");
  $("result-box").hidden = true;
  $("job-error").hidden = true;
  $("job-error").textContent = "";
  $("job-connection").textContent = "";
  showJobState(job);
}

function showJobState(job) {
  const state = job.state ?? "";
  $("job-state").textContent = state;
  $("job-state").dataset.state = state;
  $("job-cancel").hidden = !CANCELLABLE.has(state) || Boolean(job.cancel_requested);
  // The final search counters beat the heartbeat summary, which lags the event stream.
  const finalStats = job.result && typeof job.result === "object" ? job.result.stats : undefined;
  if (finalStats && typeof finalStats === "object") {
    showCounters(finalStats, {});
  } else if (
    job.summary && typeof job.summary === "object" && Object.keys(job.summary).length > 0 &&
    $("counter-expansions").dataset.updates === "0"
  ) {
    showCounters(job.summary, job.summary);
  }
  if (job.error) {
    $("job-error").textContent = job.error;
    $("job-error").hidden = false;
  }
  if (job.result !== null && job.result !== undefined) showResult(job.result);
}

function pick(...values) {
  return values.find((value) => typeof value === "number" && Number.isFinite(value));
}

// `stats` is the search's frozen counters; frontier and candidates come with the expansion event itself.
function showCounters(stats, event) {
  const set = (id, value, format = String) => {
    if (value !== undefined) $(`counter-${id}`).textContent = format(value);
  };
  set("expansions", pick(stats.expansions, event.expansion));
  set("nodes", pick(stats.nodes));
  set("frontier", pick(event.frontier, stats.frontier));
  // Candidates so far: the job summary counts them; a search snapshot has them as tried + duplicates.
  const seen = pick(stats.tactics_tried) !== undefined ? stats.tactics_tried + (pick(stats.duplicate_candidates) ?? 0) : undefined;
  set("candidates", pick(stats.candidates, stats.candidates_total, seen));
  set("lean-calls", pick(stats.lean_calls, stats.tactics_tried));
  set("elapsed", pick(stats.wall_seconds, stats.elapsed_s, stats.elapsed), formatSeconds);
  const counter = $("counter-expansions");
  counter.dataset.updates = String(Number(counter.dataset.updates || "0") + 1);
}

function treeNode(id) {
  let entry = current.nodes.get(id);
  if (entry) return entry;
  const item = element("li", undefined, { "data-testid": "tree-node", "data-node": id });
  const details = element("details");
  const summary = element("summary");
  const label = element("span", /^\d+$/.test(id) ? `#${id}` : "", { class: "node-id" });
  const preview = element("span", "(not expanded yet)", { class: "node-preview" });
  summary.append(label, " ", preview);
  const state = element("pre", "", { class: "code node-state", "data-testid": "tree-node-state" });
  const children = element("ul");
  details.append(summary, state);
  item.append(details, children);
  entry = { item, summary, preview, state, children, attached: false };
  current.nodes.set(id, entry);
  return entry;
}

// Without node ids from the server the expanded states are listed flat, keyed by their text (the
// search merges equal states into one node, so the text names the node).
function nodeKey(data) {
  // `node` is the tree's id (the root is 0); a negative one means the search did not say.
  if (typeof data.node === "number" && data.node >= 0) return String(data.node);
  if (typeof data.node === "string" && data.node !== "") return data.node;
  if (typeof data.state === "string") return `state:${data.state}`;
  return `expansion:${data.expansion ?? current.nodes.size}`;
}

function addExpansion(data) {
  const id = nodeKey(data);
  const known = current.nodes.has(id);
  if (!known && current.nodes.size >= MAX_TREE_NODES) {
    $("tree-count").textContent = `(${current.nodes.size}+ nodes; showing the first ${MAX_TREE_NODES})`;
    return;
  }
  const entry = treeNode(id);
  const stateText = typeof data.state === "string" ? data.state : "";
  entry.preview.textContent = goalLine(stateText) || "(no goals)";
  entry.summary.title = stateText; // the full state on hover; an attribute value, never markup
  entry.state.textContent = stateText;
  const meta = [];
  if (typeof data.expansion === "number") meta.push(`expansion ${data.expansion}`);
  if (typeof data.candidates === "number") meta.push(`${data.candidates} candidates`);
  entry.item.dataset.expansion = String(data.expansion ?? "");
  if (!/^\d+$/.test(id) && typeof data.expansion === "number") entry.summary.firstChild.textContent = `e${data.expansion}`;
  entry.preview.dataset.meta = meta.join(", ");
  if (!entry.attached) {
    const parent =
      data.parent === undefined || data.parent === null || (typeof data.parent === "number" && data.parent < 0)
        ? null
        : String(data.parent);
    // Expansion events are throttled, so a parent may never have been reported: show it as a placeholder.
    const container = parent !== null && parent !== id ? treeNode(parent) : null;
    if (container && !container.attached) {
      $("tree").append(container.item);
      container.attached = true;
    }
    (container ? container.children : $("tree")).append(entry.item);
    entry.attached = true;
  }
  $("tree-count").textContent = `(${current.nodes.size} nodes)`;
}

function showBestOpen(data) {
  const list = $("best-open");
  const states = Array.isArray(data.states) ? data.states : [];
  list.replaceChildren(
    ...states.map((entry) => {
      const item = element("li", undefined, { "data-testid": "best-open-state" });
      const score = typeof entry.score === "number" ? entry.score.toFixed(3) : String(entry.score ?? "");
      item.append(element("span", `score ${score}`, { class: "score" }));
      item.append(element("pre", entry.state ?? "", { class: "code" }));
      return item;
    }),
  );
}

function showVerdict(data) {
  $("verdict").hidden = false;
  $("verdict").dataset.status = String(data.status ?? "");
  $("verdict-status").textContent = String(data.status ?? "");
  $("verdict-judge").textContent = String(data.judge ?? "");
  $("verdict-reason").textContent = data.reason ? String(data.reason) : "";
  if (data.proof) $("verdict-proof").textContent = String(data.proof);
}

function showResult(result) {
  $("result-box").hidden = false;
  $("job-result").textContent = JSON.stringify(result, null, 2);
  if (result && typeof result === "object") {
    // A prove job's result carries its proof; show it even when no verdict event was stored.
    if (typeof result.proof === "string" && result.proof && !$("verdict-proof").textContent) {
      $("verdict").hidden = false;
      $("verdict-proof").textContent = result.proof;
    }
    if (!$("verdict-status").textContent && typeof result.status === "string") {
      $("verdict-status").textContent = result.status;
    }
    if (!$("verdict-judge").textContent && typeof result.judge === "string") {
      $("verdict-judge").textContent = result.judge;
    }
  }
}

function log(type, text) {
  const list = $("event-log");
  list.append(element("li", text ? `${type}: ${text}` : type, { "data-type": type }));
  while (list.childElementCount > MAX_LOG_LINES) list.firstElementChild.remove();
}

function onJobEvent(type, data) {
  switch (type) {
    case "queued":
      log(type);
      break;
    case "started":
      $("job-state").textContent = "running";
      $("job-state").dataset.state = "running";
      $("job-cancel").hidden = false;
      log(type, data.worker ? `on ${data.worker}` : "");
      refreshJobs();
      break;
    case "expansion":
      showCounters(data.stats && typeof data.stats === "object" ? data.stats : {}, data);
      addExpansion(data);
      break;
    case "best_open":
      showBestOpen(data);
      break;
    case "proof_found":
      log(type, firstLine(data.proof));
      break;
    case "proof_rejected":
      log(type, data.reason ?? "");
      break;
    case "verdict":
      showVerdict(data);
      log(type, `${data.status ?? ""} (${data.judge ?? "?"})`);
      break;
    case "item":
      log(type, `#${data.index}: ${data.status ?? ""}${data.judge ? ` (${data.judge})` : ""}${data.reason ? ` – ${data.reason}` : ""}`);
      break;
    case "finished": {
      const state = String(data.state ?? "");
      $("job-state").textContent = state;
      $("job-state").dataset.state = state;
      $("job-cancel").hidden = true;
      if (data.result !== undefined && data.result !== null) showResult(data.result);
      log(type, state);
      break;
    }
    default:
      log(type, JSON.stringify(data).slice(0, 200));
  }
}

async function followJob(job) {
  if (current) current.stream.stop();
  const stream = new JobStream(
    job.id,
    (type, data) => {
      if (current && current.stream === stream) onJobEvent(type, data);
    },
    (status) => {
      if (current && current.stream === stream) $("job-connection").textContent = status;
    },
  );
  current = { id: job.id, stream, nodes: new Map() };
  resetJobView(job);
  try {
    await stream.run();
  } catch (error) {
    if (current && current.stream === stream) showError(error);
    return;
  }
  if (!current || current.stream !== stream) return;
  $("job-connection").textContent = "finished";
  // The stored job is the authority on the final state, result and error.
  try {
    const final = await request("GET", `v1/jobs/${encodeURIComponent(job.id)}`);
    if (current && current.stream === stream) showJobState(final);
  } catch (error) {
    showError(error);
  }
  refreshJobs();
}

async function openJob(id) {
  clearError();
  try {
    const job = await request("GET", `v1/jobs/${encodeURIComponent(id)}`);
    followJob(job);
  } catch (error) {
    showError(error);
  }
}

async function cancelJob(id) {
  clearError();
  try {
    const job = await request("DELETE", `v1/jobs/${encodeURIComponent(id)}`);
    if (current && current.id === id) {
      $("job-cancel").hidden = true;
      if (job && job.state) {
        $("job-state").textContent = job.cancel_requested && job.state === "running" ? "cancelling" : job.state;
        $("job-state").dataset.state = $("job-state").textContent;
      }
    }
  } catch (error) {
    showError(error);
  }
  refreshJobs();
}

// ---------------------------------------------------------------- submitting

function optionalNumber(input, integer) {
  const text = input.value.trim();
  if (text === "") return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new ApiError(422, `${input.labels[0]?.textContent.trim() || input.name}: expected a positive ${integer ? "whole " : ""}number, got ${JSON.stringify(text)}`);
  }
  return value;
}

function optionalText(input) {
  const text = input.value;
  return text.trim() === "" ? undefined : text;
}

async function submit(path, body, button) {
  clearError();
  button.disabled = true;
  try {
    const job = await request("POST", path, body);
    followJob(job);
    refreshJobs();
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

function onProve(event) {
  event.preventDefault();
  let body;
  try {
    body = {
      statement: $("prove-statement").value,
      header: optionalText($("prove-header")),
      expansions: optionalNumber($("prove-expansions"), true),
      samples: optionalNumber($("prove-samples"), true),
      timeout_s: optionalNumber($("prove-timeout"), false),
    };
  } catch (error) {
    showError(error);
    return;
  }
  if (!body.statement.trim()) {
    showError(new ApiError(422, "the formal statement is empty"));
    return;
  }
  submit("v1/prove", dropUndefined(body), $("prove-submit"));
}

function onFormalize(event) {
  event.preventDefault();
  const body = {
    informal_statement: $("formalize-informal-statement").value,
    informal_proof: optionalText($("formalize-informal-proof")),
    formal_statement: $("formalize-formal-statement").value,
    header: optionalText($("formalize-header")),
    language: $("formalize-language").value,
  };
  if (!body.informal_statement.trim() || !body.formal_statement.trim()) {
    showError(new ApiError(422, "the informal and the formal statement are both needed"));
    return;
  }
  submit("v1/formalize", dropUndefined(body), $("formalize-submit"));
}

function dropUndefined(body) {
  return Object.fromEntries(Object.entries(body).filter(([, value]) => value !== undefined));
}

// ---------------------------------------------------------------- jobs list

let jobsCursor = null;
let jobsGeneration = 0;

async function refreshJobs(more = false) {
  const generation = ++jobsGeneration;
  const params = new URLSearchParams({ limit: "50" });
  const state = $("jobs-state").value;
  if (state) params.set("state", state);
  if (more && jobsCursor) params.set("before", jobsCursor);
  $("jobs-status").textContent = "loading…";
  try {
    const page = await request("GET", `v1/jobs?${params}`);
    if (generation !== jobsGeneration) return; // a newer refresh is under way
    const rows = (Array.isArray(page.jobs) ? page.jobs : []).map(jobRow);
    if (more) $("jobs-body").append(...rows);
    else $("jobs-body").replaceChildren(...rows);
    jobsCursor = page.next ?? null;
    $("jobs-more").hidden = jobsCursor === null;
    $("jobs-status").textContent = `${$("jobs-body").childElementCount} shown, updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    if (generation !== jobsGeneration) return;
    $("jobs-status").textContent = "";
    showError(error);
  }
}

function jobRow(job) {
  const row = element("tr", undefined, { "data-testid": "job-row", "data-job-id": job.id, "data-state": job.state });
  const open = element("button", String(job.id).slice(0, 12), {
    type: "button",
    class: "link",
    "data-testid": "job-open",
    "aria-label": `Show job ${job.id}`,
    title: String(job.id),
  });
  open.addEventListener("click", () => openJob(job.id));
  const idCell = element("td");
  idCell.append(open);
  const summary = job.summary && typeof job.summary === "object" ? job.summary : {};
  const stateText = job.cancel_requested && job.state === "running" ? "cancelling" : job.state;
  row.append(
    idCell,
    element("td", job.kind ?? ""),
    element("td", stateText ?? "", { "data-testid": "job-row-state", class: "state", "data-state": stateText ?? "" }),
    element("td", formatTime(job.created_at)),
    element("td", pick(summary.expansions) ?? ""),
  );
  const actions = element("td");
  if (CANCELLABLE.has(job.state) && !job.cancel_requested) {
    const cancel = element("button", "Cancel", {
      type: "button",
      "data-testid": "job-row-cancel",
      "aria-label": `Cancel job ${job.id}`,
    });
    cancel.addEventListener("click", () => cancelJob(job.id));
    actions.append(cancel);
  }
  row.append(actions);
  return row;
}

// ---------------------------------------------------------------- tabs and start-up

function selectTab(name) {
  for (const other of ["prove", "formalize"]) {
    const selected = other === name;
    const tab = $(`tab-${other}`);
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(`panel-${other}`).hidden = !selected;
  }
}

function start() {
  showTokenStatus();
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setToken($("token").value.trim());
    $("token").value = "";
    refreshJobs();
  });
  $("token-clear").addEventListener("click", () => {
    setToken("");
    $("token").value = "";
  });
  $("error-dismiss").addEventListener("click", clearError);
  $("tab-prove").addEventListener("click", () => selectTab("prove"));
  $("tab-formalize").addEventListener("click", () => selectTab("formalize"));
  for (const tab of [$("tab-prove"), $("tab-formalize")]) {
    tab.addEventListener("keydown", (event) => {
      if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
        const next = tab.id === "tab-prove" ? "formalize" : "prove";
        selectTab(next);
        $(`tab-${next}`).focus();
      }
    });
  }
  $("prove-form").addEventListener("submit", onProve);
  $("formalize-form").addEventListener("submit", onFormalize);
  $("job-cancel").addEventListener("click", () => {
    if (current) cancelJob(current.id);
  });
  $("jobs-refresh").addEventListener("click", () => refreshJobs());
  $("jobs-state").addEventListener("change", () => refreshJobs());
  $("jobs-more").addEventListener("click", () => refreshJobs(true));
  refreshJobs();
  const fromHash = new URLSearchParams(window.location.hash.slice(1)).get("job");
  if (fromHash) openJob(fromHash);
  document.body.dataset.ready = "true";
}

start();
