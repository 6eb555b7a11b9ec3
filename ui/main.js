// caro popup: ask, show the command and its verdict, copy / run / explain / revise.
"use strict";
const { invoke } = window.__TAURI__.core;
const { listen } = window.__TAURI__.event;
const $ = (id) => document.getElementById(id);
let current = null;     // the last Answer
let pendingRun = false; // Run pressed once on a command that needs confirmation

function show(el, on) { el.hidden = !on; }
function fail(e) {
  const msg = e && e.message ? e.message : String(e);
  // core's hint says what to do next (download the model, start the server, …)
  $("error").textContent = e && e.hint ? `${msg} — ${e.hint}` : msg;
  show($("error"), true);
}
function busy(text) {
  $("progress").textContent = text || "";
  show($("progress"), Boolean(text));
  for (const b of document.querySelectorAll("button")) b.disabled = Boolean(text) || b.dataset.locked === "1";
}

function render(a, opts = {}) {
  current = a;
  pendingRun = false;
  show($("error"), false);
  show($("result"), true);
  show($("explanation"), false);
  show($("output"), false);
  show($("confirm"), false);
  if (opts.keepText === undefined) $("command").value = a.command;
  const badge = $("badge");
  badge.className = "badge " + a.risk;
  badge.textContent = a.risk;
  badge.setAttribute("aria-label", "risk: " + a.risk);
  $("meta").textContent = `${a.mode} mode · ${a.backend} · ${(a.took_ms / 1000).toFixed(1)} s` +
    (a.fallback_reason ? ` · fell back: ${a.fallback_reason}` : "");
  // Issue 20: what the command did in a sandbox with a copy of the folder. An edited command
  // has no preview (it never ran), so none is shown for it.
  const preview = a.effects ? a.effects.summary : "";
  $("preview").textContent = preview;
  $("preview").classList.toggle("previewed", Boolean(a.effects && a.effects.previewed));
  show($("preview"), Boolean(preview));
  const list = $("findings");
  list.replaceChildren();
  for (const f of a.findings) {
    const li = document.createElement("li");
    li.textContent = `${f.level}: ${f.message}`;
    if (f.alternative) {
      const alt = document.createElement("span");
      alt.className = "alt";
      alt.textContent = "safer: " + f.alternative;
      li.append(alt);
    }
    list.append(li);
  }
  // A refused or blocked command is not offered for Run at all.
  const run = $("run");
  run.dataset.locked = a.blocked ? "1" : "0";
  run.disabled = a.blocked;
  show(run, !a.blocked);
  run.title = "Run (Ctrl+Enter) in " + a.cwd;
  $("refusal").textContent = a.refusal || "";
  show($("refusal"), Boolean(a.blocked && a.refusal));
  if (a.cwd && document.activeElement !== $("folder")) $("folder").value = a.cwd;
  if (opts.keepText === undefined) refreshHistory();
}

async function ask(event) {
  event.preventDefault();
  const prompt = $("prompt").value.trim();
  if (!prompt) return;
  const status = await invoke("status").catch(() => null);
  busy(status && !status.model_loaded ? "Loading the model (first request)…" : "Thinking…");
  try { render(await invoke("generate", { prompt })); }
  catch (e) { fail(e); }
  finally { busy(""); }
}

async function revise(event) {
  event.preventDefault();
  const instruction = $("revise").value.trim();
  if (!instruction) return;
  busy("Revising…");
  try { render(await invoke("revise", { instruction })); $("revise").value = ""; }
  catch (e) { fail(e); }
  finally { busy(""); }
}

async function copy() {
  try { await invoke("copy", { text: $("command").value }); $("meta").textContent = "copied to the clipboard"; }
  catch (e) { fail(e); }
}

async function run() {
  if (!current || current.blocked) return;
  const command = $("command").value;
  const confirmed = pendingRun;
  busy("Running…");
  try {
    const out = await invoke("execute", { command, confirmed });
    pendingRun = false;
    show($("confirm"), false);
    const text = (out.stdout || "") + (out.stderr ? "\n" + out.stderr : "");
    $("output").textContent = (text.trim() || "(no output)") +
      `\n[exit ${out.status === null ? "?" : out.status}${out.timed_out ? ", stopped after 30 s" : ""}]`;
    show($("output"), true);
  } catch (e) {
    if (e && e.code === "needs_confirmation") {
      pendingRun = true;
      $("confirm").textContent = e.message + " — press Run again to confirm.";
      show($("confirm"), true);
    } else { fail(e); }
  } finally { busy(""); }
}

async function explain() {
  busy("Explaining…");
  try { $("explanation").textContent = await invoke("explain", { command: $("command").value }); show($("explanation"), true); }
  catch (e) { fail(e); }
  finally { busy(""); }
}

async function refreshHistory() {
  const list = $("history");
  list.replaceChildren();
  for (const h of (await invoke("history").catch(() => [])).slice(0, 8)) {
    const li = document.createElement("li");
    const code = document.createElement("code");
    code.textContent = h.command;
    li.append(h.prompt + " → ", code);
    li.tabIndex = 0;
    li.addEventListener("click", () => { $("prompt").value = h.prompt; $("prompt").focus(); });
    list.append(li);
  }
}

// Editing the command re-rates it, so the badge and Run always match what would run.
let checkTimer = null;
$("command").addEventListener("input", () => {
  clearTimeout(checkTimer);
  checkTimer = setTimeout(async () => {
    try {
      const a = await invoke("check", { command: $("command").value });
      const keep = $("command").value;
      render({ ...a, took_ms: current ? current.took_ms : 0 }, { keepText: keep });
    } catch (e) { fail(e); }
  }, 120);
});

// Another folder for Run: the command is rated again for it.
async function changeFolder(event) {
  event.preventDefault();
  try {
    $("folder").value = await invoke("set_run_dir", { dir: $("folder").value });
    if (current) {
      const keep = $("command").value;
      const a = await invoke("check", { command: keep });
      render({ ...a, took_ms: current.took_ms }, { keepText: keep });
    }
  } catch (e) { fail(e); }
}

$("ask").addEventListener("submit", ask);
$("folder-form").addEventListener("submit", changeFolder);
$("revise-form").addEventListener("submit", revise);
$("copy").addEventListener("click", copy);
$("run").addEventListener("click", run);
$("explain").addEventListener("click", explain);
$("forget").addEventListener("click", async () => { await invoke("forget").catch(fail); refreshHistory(); });
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") { invoke("hide"); }
  else if (e.key === "Enter" && e.ctrlKey) { e.preventDefault(); run(); }
});
listen("popup-shown", () => { $("prompt").focus(); $("prompt").select(); pollModel(); });

// First launch: the model downloads while the popup shows its progress. Polling (not events)
// so a page that opens mid-download still shows where it stands.
const mb = (n) => (n / 1e6).toFixed(n < 1e8 ? 1 : 0) + " MB";
let pollTimer = null;
function showSetup(s) {
  const setup = s.phase !== "ready";
  show($("setup"), setup);
  show($("ask"), !setup);
  show($("recent"), !setup);
  if (!setup) { $("prompt").focus(); return; }
  show($("result"), false);
  $("setup-what").textContent = `${s.title} (${mb(s.total)}) is downloading. caro needs it once.`;
  $("setup-bar").value = s.total ? s.done / s.total : 0;
  const pct = s.total ? Math.floor((100 * s.done) / s.total) : 0;
  const text = {
    needed: "Not downloaded yet.",
    waiting: "Waiting for another caro that is downloading the same model…",
    downloading: `${mb(s.done)} of ${mb(s.total)} (${pct}%)` + (s.source ? ` from ${s.source}` : ""),
    verifying: "Checking the sha256…",
    cancelled: `Cancelled at ${mb(s.done)}. Retry resumes from there.`,
    failed: "The download failed.",
  }[s.phase] || s.phase;
  $("setup-text").textContent = text;
  $("setup").dataset.phase = s.phase;
  show($("setup-note"), Boolean(s.note));
  $("setup-note").textContent = s.note || "";
  show($("setup-error"), Boolean(s.error));
  $("setup-error").textContent = s.error ? s.error.message : "";
  const running = ["waiting", "downloading", "verifying"].includes(s.phase);
  show($("setup-cancel"), running);
  show($("setup-retry"), !running);
  $("setup-retry").textContent = s.phase === "needed" ? "Download" : "Retry";
}
async function pollModel() {
  clearTimeout(pollTimer);
  const s = await invoke("model_status").catch(() => null);
  if (!s) return;
  showSetup(s);
  if (s.phase !== "ready") pollTimer = setTimeout(pollModel, 250);
}
$("setup-cancel").addEventListener("click", async () => { showSetup(await invoke("model_cancel")); pollModel(); });
$("setup-retry").addEventListener("click", async () => { showSetup(await invoke("model_download")); pollModel(); });
pollModel();
refreshHistory();
invoke("run_dir").then((d) => { $("folder").value = d; }).catch(() => {});
