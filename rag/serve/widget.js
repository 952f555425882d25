/* A chat widget for any web page, answered by this server's POST /api/ask:
 *
 *   <script src="https://HOST/widget.js" data-title="Ask the AI policy documents"></script>
 *
 * It adds a button that opens a chat panel. Each answer streams in as checked sentences
 * (`sentence` events), then the final `answer` event adds whatever follows them and is the
 * record; its numbered citations open the quoted passage with its document's title, date and
 * link. A refusal and a partial answer are shown as such; `rewritten` shows what was searched
 * for, `writing` moves the status line on, and the model's unchecked draft is never shown.
 * Plain JavaScript, no framework and no build step; everything lives in a Shadow DOM, so the
 * host page's CSS and the widget's never meet. The API is found beside this script (its own
 * `src`), never on the host page.
 *
 * Attributes: data-title (the button and panel heading), data-key (sent as
 * `Authorization: Bearer <key>`; a key written into a public page is public).
 * See docs/widget.md. The server must list the host page's origin in RAG_CORS_ORIGINS.
 */
(() => {
  "use strict";

  const script = document.currentScript;
  if (!script || !script.src) return; // a classic <script src=…> only: the API is found from it

  const ASK_URL = new URL("api/ask", script.src).href;
  const SERVICE = new URL(script.src).origin;
  const TITLE = (script.getAttribute("data-title") || "").trim() || "Ask the documents";
  const KEY = (script.getAttribute("data-key") || "").trim();
  const MAX_QUESTION = 2000; // rag.pipeline.MAX_QUESTION_CHARS
  const MAX_HISTORY = 20; // messages (ten exchanges) sent along for a follow-up
  const MAX_TURN_CHARS = 20000; // the API's limit on one history message
  const MARKER = /\[(\d+(?:\s*[,;]\s*\d+)*)\]/g; // rag.text.MARKER: [1], [1, 2], [1; 2]
  const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December"];

  const CSS = `
:host { all: initial !important; }
.root { all: initial; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
  color: #1f2937; }
.root *, .root *::before, .root *::after { box-sizing: border-box; }
[hidden] { display: none !important; }
.sr { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
button { font: inherit; color: inherit; cursor: pointer; }
button:focus-visible, textarea:focus-visible, a:focus-visible, summary:focus-visible {
  outline: 3px solid #f59e0b; outline-offset: 2px; }
.launcher { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; display: flex;
  align-items: center; gap: 8px; max-width: calc(100vw - 40px); padding: 12px 18px; border: 0;
  border-radius: 999px; background: #1d4ed8; color: #fff; font-weight: 600;
  box-shadow: 0 4px 14px rgba(0, 0, 0, .25); }
.launcher:hover { background: #1e40af; }
.launcher svg { flex: none; width: 20px; height: 20px; }
.launcher-text { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; max-width: 18em; }
.panel { position: fixed; right: 20px; bottom: 84px; z-index: 2147483001; display: flex;
  flex-direction: column; width: 400px; max-width: calc(100vw - 40px); height: 600px;
  max-height: calc(100vh - 110px); overflow: hidden; background: #fff; border: 1px solid #d1d5db;
  border-radius: 12px; box-shadow: 0 12px 40px rgba(0, 0, 0, .25); }
.head { display: flex; align-items: center; gap: 6px; padding: 10px 10px 10px 16px;
  background: #1d4ed8; color: #fff; }
.head h2 { flex: 1; margin: 0; font-size: 16px; font-weight: 700; line-height: 1.3; }
.head button { border: 1px solid rgba(255, 255, 255, .6); border-radius: 6px; background: transparent;
  padding: 4px 10px; font-size: 13px; }
.head .close { border: 0; padding: 2px 8px; font-size: 22px; line-height: 1; }
.head button:hover { background: rgba(255, 255, 255, .15); }
.log { flex: 1; overflow-y: auto; padding: 14px; background: #f9fafb; }
.intro { margin: 0 0 12px; color: #4b5563; font-size: 14px; }
.turn { margin: 0 0 16px; }
.q { margin: 0 0 8px auto; width: fit-content; max-width: 85%; padding: 8px 12px;
  border-radius: 12px 12px 2px 12px; background: #dbeafe; color: #1e3a8a; white-space: pre-wrap;
  overflow-wrap: anywhere; }
.a { padding: 10px 12px; border: 1px solid #e5e7eb; border-radius: 12px 12px 12px 2px;
  background: #fff; overflow-wrap: anywhere; }
.a p { margin: 0 0 8px; }
.a p:last-child { margin-bottom: 0; }
.searched, .status { color: #6b7280; font-size: 13px; }
.status::before { content: ""; display: inline-block; width: 10px; height: 10px; margin-right: 6px;
  border: 2px solid #cbd5e1; border-top-color: #1d4ed8; border-radius: 50%; vertical-align: -1px;
  animation: spin 1s linear infinite; }
@keyframes spin { to { transform: rotate(360deg); } }
@media (prefers-reduced-motion: reduce) { .status::before { animation: none; } }
.cite { display: inline; margin: 0 1px; padding: 0 2px; border: 0; border-radius: 4px;
  background: #eff6ff; color: #1d4ed8; font-size: .85em; font-weight: 600; text-decoration: underline; }
.cite:hover { background: #dbeafe; }
.partial { color: #5b21b6; font-size: 13px; }
.label { display: inline-block; margin-right: 4px; padding: 1px 8px; border-radius: 999px;
  background: #ede9fe; color: #5b21b6; font-size: 12px; font-weight: 700; }
.notice { margin: 0; padding: 8px 10px; border-left: 4px solid; border-radius: 4px; }
.notice strong { display: block; }
.notice .detail { display: block; margin-top: 2px; font-size: 14px; }
.refused { border-color: #d97706; background: #fffbeb; color: #78350f; }
.error { border-color: #b91c1c; background: #fef2f2; color: #7f1d1d; }
.stopped { border-color: #9ca3af; background: #f3f4f6; color: #374151; }
.sources { margin-top: 10px; }
.sources-h { margin: 0 0 4px; font-size: 12px; font-weight: 700; letter-spacing: .04em;
  text-transform: uppercase; color: #6b7280; }
details.src { margin: 0 0 6px; border: 1px solid #e5e7eb; border-radius: 8px; background: #fff; }
details.src[open] { border-color: #93c5fd; }
details.src summary { padding: 6px 10px; cursor: pointer; font-size: 14px; }
.num { color: #1d4ed8; font-weight: 700; }
.src-body { padding: 0 10px 8px; font-size: 14px; }
.src-body blockquote { margin: 4px 0 6px; padding: 2px 0 2px 10px; border-left: 3px solid #1d4ed8;
  color: #374151; }
.meta { margin: 0 0 4px; color: #6b7280; font-size: 13px; }
.badge { display: inline-block; padding: 0 6px; border-radius: 999px; background: #fef3c7;
  color: #92400e; font-size: 12px; font-weight: 600; }
.src-body a { color: #1d4ed8; }
.ask { display: flex; gap: 8px; align-items: flex-end; padding: 10px; border-top: 1px solid #e5e7eb;
  background: #fff; }
.ask textarea { flex: 1; min-height: 44px; max-height: 140px; resize: none; padding: 9px 10px;
  border: 1px solid #9ca3af; border-radius: 8px; font: inherit; font-size: 16px; color: inherit;
  background: #fff; }
.send { min-height: 44px; padding: 0 16px; border: 0; border-radius: 8px; background: #1d4ed8;
  color: #fff; font-weight: 600; }
.send.stop { background: #4b5563; }
.foot { margin: 0; padding: 0 12px 8px; background: #fff; color: #6b7280; font-size: 12px; }
@media (max-width: 480px) {
  .launcher { right: 12px; bottom: 12px; }
  .panel { inset: 0; width: 100%; max-width: none; height: 100%; max-height: none; border: 0;
    border-radius: 0; }
  .root.open .launcher { display: none; }
}`;

  const HTML = `
<div class="root">
  <button type="button" class="launcher" aria-expanded="false" aria-controls="panel">
    <svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path fill="currentColor"
      d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm3 6v2h2V9H7zm4 0v2h2V9h-2zm4 0v2h2V9h-2z"/></svg>
    <span class="launcher-text"></span>
  </button>
  <section class="panel" id="panel" role="dialog" aria-modal="false" aria-labelledby="title" hidden>
    <div class="head">
      <h2 id="title"></h2>
      <button type="button" class="new">New chat</button>
      <button type="button" class="close" aria-label="Close">×</button>
    </div>
    <div class="log" id="log" role="log" aria-live="polite" aria-label="Conversation">
      <p class="intro">Ask a question about the documents. Every answer is checked against them and
        cites the passages it comes from; when they don't hold the answer, it says so.</p>
    </div>
    <form class="ask">
      <label class="sr" for="q">Your question</label>
      <textarea id="q" rows="1" placeholder="Ask a question…" autocomplete="off"></textarea>
      <button type="submit" class="send">Ask</button>
    </form>
    <p class="foot">Answers come only from the indexed documents. Check important facts at the source.</p>
  </section>
</div>`;

  /** An element with a class and text: `h("p", "q", "Hi")`. */
  function h(tag, cls, text) {
    const el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text != null) el.textContent = text;
    return el;
  }

  /** "2025-07-22" -> "22 July 2025"; anything else as it is. */
  function formatDate(iso) {
    const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(iso || "").trim());
    if (!m || +m[2] < 1 || +m[2] > 12) return String(iso || "");
    return `${+m[3]} ${MONTHS[+m[2] - 1]} ${m[1]}`;
  }

  /** The URL when it is http(s), else "" (an upload's front matter could hold `javascript:`). */
  function safeUrl(url) {
    const u = String(url || "").trim();
    return /^https?:\/\/\S/i.test(u) ? u : "";
  }

  /** Whitespace- and case-blind equality, for "was the question rewritten?". */
  function same(a, b) {
    const norm = (s) => String(s || "").toLowerCase().split(/\s+/).join(" ").trim();
    return norm(a) === norm(b);
  }

  /**
   * A server-sent-events parser for a fetched body (EventSource cannot POST): feed it decoded
   * text; it calls `onEvent(name, data)` for each complete event. Lines may end in \n, \r\n or \r.
   */
  function sseParser(onEvent) {
    let buffer = "";
    let name = "";
    let data = [];
    function line(text) {
      if (text === "") {
        if (data.length) onEvent(name || "message", data.join("\n"));
        name = "";
        data = [];
        return;
      }
      if (text[0] === ":") return; // a comment (the server's keep-alive ping)
      const colon = text.indexOf(":");
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? "" : text.slice(colon + 1);
      if (value[0] === " ") value = value.slice(1);
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    return (text, done) => {
      buffer += text;
      const ends = /\r\n|\r|\n/g;
      let start = 0;
      let m;
      while ((m = ends.exec(buffer))) {
        // A lone \r at the end may be the first half of \r\n still in flight.
        if (m[0] === "\r" && m.index === buffer.length - 1 && !done) break;
        line(buffer.slice(start, m.index));
        start = ends.lastIndex;
      }
      buffer = buffer.slice(start); // an unfinished event at the very end is dropped, as the spec says
    };
  }

  /** The lead and detail shown for a refused HTTP request; `detail` is the server's own message. */
  async function httpError(res) {
    let message = "";
    try {
      const body = await res.clone().json();
      message = (body && body.error && body.error.message) || "";
    } catch {
      try {
        message = (await res.text()).slice(0, 300);
      } catch {
        message = "";
      }
    }
    const wait = res.headers.get("retry-after");
    const again = wait ? ` Try again in ${wait} s.` : " Try again in a moment.";
    const leads = {
      401: "The answer service needs a key that this page did not send, or sent wrong.",
      403: "The answer service refused questions from this page.",
      413: "The question is too long.",
      422: "The answer service could not read the question.",
      429: `Too many questions for now.${again}`,
      502: "The answer service's model failed.",
      503: `The answer service is busy or still starting.${again}`,
      504: "The answer took too long.",
    };
    return { lead: leads[res.status] || `The answer service could not answer (HTTP ${res.status}).`, detail: message };
  }

  /** The lead and detail for an `error` event inside the stream: {"error": {"code", "message"}}. */
  function streamError(payload) {
    const err = (payload && payload.error) || {};
    const leads = { timeout: "The answer took too long.", busy: "The answer service is busy." };
    return { lead: leads[err.code] || "The answer stopped.", detail: err.message || "" };
  }

  function networkError() {
    return {
      lead: `Could not reach the answer service at ${SERVICE}.`,
      detail: "It may be offline, or it may not take questions from this site " +
        "(the server lists the sites it answers in RAG_CORS_ORIGINS).",
    };
  }

  function mount() {
    const host = document.createElement("rag-chat-widget");
    const shadow = host.attachShadow({ mode: "open" });
    // A constructed sheet where the browser has them: a host page's CSP on <style> does not apply.
    if ("adoptedStyleSheets" in shadow && "replaceSync" in CSSStyleSheet.prototype) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      shadow.adoptedStyleSheets = [sheet];
      shadow.innerHTML = HTML; // our own markup only; every text from the page or server is set as text
    } else {
      shadow.innerHTML = `<style>${CSS}</style>${HTML}`;
    }
    const $ = (selector) => shadow.querySelector(selector);
    const root = $(".root");
    const launcher = $(".launcher");
    const panel = $(".panel");
    const log = $(".log");
    const form = $(".ask");
    const input = $("textarea");
    const send = $(".send");
    $(".launcher-text").textContent = TITLE;
    $("#title").textContent = TITLE;
    input.maxLength = MAX_QUESTION;

    let history = [];
    let turnCount = 0;
    let running = null; // the AbortController of the answer streaming now

    function setOpen(open) {
      panel.hidden = !open;
      root.classList.toggle("open", open);
      launcher.setAttribute("aria-expanded", String(open));
      (open ? input : launcher).focus();
    }

    function setBusy(busy) {
      send.textContent = busy ? "Stop" : "Ask";
      send.classList.toggle("stop", busy);
    }

    /** Keep the newest text in view, unless the reader has scrolled up to read. */
    function follow(fn) {
      const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
      fn();
      if (atEnd) log.scrollTop = log.scrollHeight;
    }

    /** One question and its answer as they appear in the log. */
    function makeTurn(question) {
      const id = ++turnCount;
      const el = h("div", "turn");
      const q = h("p", "q");
      q.append(h("span", "sr", "You asked: "), question);
      const a = h("div", "a");
      const body = h("div", "text");
      const status = h("p", "status", "Searching the documents…");
      const sources = h("div", "sources");
      const list = h("div");
      sources.append(h("p", "sources-h", "Sources"), list);
      sources.hidden = true;
      a.append(h("span", "sr", "Answer: "), body, status, sources);
      el.append(q, a);
      follow(() => log.append(el));

      const cites = new Map(); // n -> <details>
      let streamed = ""; // the sentences shown so far, joined by a space
      let para = null;

      function marker(n) {
        const b = h("button", "cite", `[${n}]`);
        b.type = "button";
        b.dataset.target = `src-${id}-${n}`;
        b.setAttribute("aria-controls", b.dataset.target);
        const d = cites.get(n);
        b.setAttribute("aria-label", d ? `Source ${n}: ${d.dataset.title}` : `Source ${n}`);
        return b;
      }

      function appendInline(target, text) {
        let last = 0;
        for (const m of text.matchAll(MARKER)) {
          if (m.index > last) target.append(text.slice(last, m.index));
          for (const n of m[1].split(/\s*[,;]\s*/)) target.append(marker(+n));
          last = m.index + m[0].length;
        }
        if (last < text.length) target.append(text.slice(last));
      }

      /** Append text: a blank line starts a new paragraph, a single newline breaks the line. */
      function appendText(text) {
        text.split(/\n{2,}/).forEach((part, i) => {
          if (i > 0) para = null;
          if (!para) {
            part = part.replace(/^\s+/, "");
            if (!part) return;
            para = h("p");
            body.append(para);
          }
          part.split("\n").forEach((lineText, j) => {
            if (j) para.append(h("br"));
            appendInline(para, lineText);
          });
        });
      }

      function addSource(c) {
        const n = Number(c && c.n);
        if (!Number.isInteger(n)) return;
        const title = String(c.title || c.doc_id || `Source ${n}`);
        let d = cites.get(n);
        if (!d) {
          d = h("details", "src");
          d.id = `src-${id}-${n}`;
          cites.set(n, d);
          const after = [...cites.keys()].filter((k) => k > n).sort((x, y) => x - y)[0];
          list.insertBefore(d, after === undefined ? null : cites.get(after));
        }
        d.dataset.title = title;
        const summary = h("summary");
        summary.append(h("span", "num", `[${n}]`), " ", title);
        const inner = h("div", "src-body");
        if (c.quote) inner.append(h("blockquote", null, `“${String(c.quote).trim()}”`));
        const meta = [c.publisher, formatDate(c.date)].filter(Boolean).map(String);
        if (meta.length || c.uploaded) {
          const p = h("p", "meta", meta.join(" · "));
          if (c.uploaded) p.append(meta.length ? " · " : "", h("span", "badge", "uploaded"));
          inner.append(p);
        }
        const url = safeUrl(c.url);
        if (url) {
          const link = h("a", null, "Open the source");
          link.href = url;
          link.target = "_blank";
          link.rel = "noopener noreferrer";
          link.append(h("span", "sr", ` (“${title}”, opens in a new tab)`));
          inner.append(link);
        }
        d.replaceChildren(summary, inner);
        body.querySelectorAll(`button.cite[data-target="${d.id}"]`).forEach((b) => {
          b.setAttribute("aria-label", `Source ${n}: ${title}`);
        });
        sources.hidden = false;
      }

      function notice(kind, lead, detail) {
        const box = h("p", `notice ${kind}`);
        box.append(h("strong", null, lead));
        if (detail) box.append(" ", h("span", "detail", detail));
        return box;
      }

      return {
        rewritten(standalone) {
          if (standalone && !same(standalone, question)) {
            a.insertBefore(h("p", "searched", `Searched for: “${standalone}”`), body);
          }
        },
        drafting() {
          status.textContent = "Writing the answer and checking its citations…";
        },
        sentence(text, citations) {
          this.drafting();
          (citations || []).forEach(addSource);
          const piece = (streamed ? " " : "") + String(text || "");
          follow(() => appendText(piece));
          streamed += piece;
        },
        finish(answer) {
          status.remove();
          answer = answer || {};
          const full = String(answer.answer || "");
          follow(() => {
            if (answer.partial) {
              const tag = h("p", "partial");
              tag.append(h("span", "label", "Partial answer"), " The closest passages, quoted; not a full answer.");
              a.insertBefore(tag, body);
            }
            if (answer.refused && !streamed) {
              const said = full || "The documents don't hold an answer to that.";
              const hint = "This service answers only from its documents, so it gives no answer rather than guess.";
              a.insertBefore(notice("refused", "Not in the documents", `${said} ${hint}`), body);
            } else if (full.startsWith(streamed)) {
              appendText(full.slice(streamed.length)); // what the answer adds after the sentences
            } else {
              body.replaceChildren(); // cannot happen by the protocol; the answer event is the record
              para = null;
              appendText(full);
            }
            (answer.citations || []).forEach(addSource);
          });
        },
        fail(err) {
          status.remove();
          follow(() => a.insertBefore(notice("error", err.lead, err.detail), sources));
        },
        stopped() {
          status.remove();
          follow(() => a.insertBefore(notice("stopped", "Stopped.", ""), sources));
        },
      };
    }

    async function readEvents(stream, turn) {
      const reader = stream.getReader();
      const decoder = new TextDecoder();
      let answer = null;
      let failed = false;
      const feed = sseParser((event, data) => {
        let payload;
        try {
          payload = JSON.parse(data);
        } catch {
          return;
        }
        if (event === "rewritten") turn.rewritten(payload.question);
        else if (event === "writing" || event === "token") turn.drafting(); // a draft is never shown
        else if (event === "sentence") turn.sentence(payload.text, payload.citations);
        else if (event === "answer") {
          answer = payload;
          turn.finish(payload);
        } else if (event === "error") {
          failed = true;
          turn.fail(streamError(payload));
        }
      });
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        feed(decoder.decode(value, { stream: true }), false);
        if (answer || failed) break;
      }
      feed(decoder.decode(), true);
      reader.cancel().catch(() => {});
      if (!answer && !failed) {
        turn.fail({ lead: "The answer stopped before it was finished.", detail: "Try again." });
      }
      return answer;
    }

    async function ask(question) {
      const turn = makeTurn(question);
      const controller = new AbortController();
      running = controller;
      setBusy(true);
      const headers = { "Content-Type": "application/json", Accept: "text/event-stream" };
      if (KEY) headers.Authorization = `Bearer ${KEY}`;
      try {
        const res = await fetch(ASK_URL, {
          method: "POST",
          headers,
          body: JSON.stringify({ question, history: history.slice(-MAX_HISTORY), stream: true }),
          signal: controller.signal,
          credentials: "omit", // the API takes keys, never cookies
          cache: "no-store",
        });
        let answer = null;
        if (!res.ok) turn.fail(await httpError(res));
        else if (!(res.headers.get("content-type") || "").includes("text/event-stream")) {
          answer = await res.json(); // a server that answered in one piece
          turn.finish(answer);
        } else answer = await readEvents(res.body, turn);
        if (answer) {
          history.push(
            { role: "user", content: question.slice(0, MAX_TURN_CHARS) },
            { role: "assistant", content: String(answer.answer || "").slice(0, MAX_TURN_CHARS) },
          );
        }
      } catch (err) {
        if (err && err.name === "AbortError") turn.stopped();
        else turn.fail(networkError());
      } finally {
        if (running === controller) {
          running = null;
          setBusy(false);
        }
      }
    }

    launcher.addEventListener("click", () => setOpen(panel.hidden));
    $(".close").addEventListener("click", () => setOpen(false));
    $(".new").addEventListener("click", () => {
      if (running) running.abort();
      history = [];
      log.querySelectorAll(".turn").forEach((t) => t.remove());
      input.focus();
    });
    shadow.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !panel.hidden) {
        e.preventDefault();
        setOpen(false);
      }
    });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (running) {
        running.abort();
        return;
      }
      const question = input.value.trim();
      if (!question) {
        input.focus();
        return;
      }
      input.value = "";
      ask(question);
    });
    input.addEventListener("keydown", (e) => {
      if (e.key !== "Enter" || e.shiftKey || e.isComposing) return;
      e.preventDefault();
      if (!running) form.requestSubmit();
    });
    log.addEventListener("click", (e) => {
      const button = e.target.closest("button.cite");
      const source = button && shadow.getElementById(button.dataset.target);
      if (!source) return;
      source.open = true;
      const summary = source.querySelector("summary");
      summary.focus();
      source.scrollIntoView({ block: "nearest" });
    });

    document.body.append(host);
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
})();
