"""`/widget.js`: the `<newsletter-qa>` web component an intranet page embeds with one script tag.

The page never holds an API key: the component asks the server for a short-lived token bound to the page's
origin (`POST /v1/widget/token`, refused unless the origin is in `allowed_origins`), then asks with it.
Everything is rendered with `textContent`, inside a shadow root.
"""

SCRIPT = r"""(() => {
  const base = new URL(document.currentScript ? document.currentScript.src : location.href).origin;
  const css = `
    :host { font: 14px/1.5 system-ui, sans-serif; position: fixed; right: 18px; bottom: 18px;
      z-index: 2147483000; }
    button.toggle { border-radius: 999px; padding: 10px 16px; border: 0; background: #2563eb; color: #fff;
      cursor: pointer; }
    .panel { display: none; width: 360px; max-height: 70vh; overflow: auto; background: #fff; color: #111;
      border: 1px solid #cbd5e1; border-radius: 12px; box-shadow: 0 10px 30px rgba(0,0,0,.2); padding: 12px;
      margin-bottom: 8px; }
    :host([open]) .panel { display: block; }
    form { display: flex; gap: 6px; } input { flex: 1; padding: 6px 8px; }
    .answer { white-space: pre-wrap; margin: 10px 0; } .error { color: #b91c1c; }
    ol { padding-left: 20px; font-size: 12px; color: #334155; }`;
  class NewsletterQA extends HTMLElement {
    connectedCallback() {
      if (this.shadowRoot) return;
      const root = this.attachShadow({mode: 'open'});
      root.innerHTML = `<style>${css}</style><div class="panel" part="panel">
        <form><input name="q" autocomplete="off" aria-label="Question"><button type="submit">Ask</button></form>
        <div class="answer" aria-live="polite"></div><ol class="sources"></ol></div>
        <button class="toggle" type="button">Newsletter Q&amp;A</button>`;
      root.querySelector('.toggle').addEventListener('click', () => this.toggleAttribute('open'));
      root.querySelector('form').addEventListener('submit', (e) => { e.preventDefault(); this.ask(); });
    }
    async token() {
      if (this._token && this._exp - 30 > Date.now() / 1000) return this._token;
      const r = await fetch(base + '/v1/widget/token', {method: 'POST'});
      const j = await r.json();
      if (!r.ok) throw new Error(j.error ? j.error.message : 'refused');
      this._token = j.token; this._exp = j.expires_at;
      return this._token;
    }
    async ask() {
      const root = this.shadowRoot, out = root.querySelector('.answer'), list = root.querySelector('.sources');
      const question = root.querySelector('input').value.trim();
      if (!question) return;
      out.className = 'answer'; out.textContent = '…'; list.textContent = '';
      try {
        const r = await fetch(base + '/v1/ask', {method: 'POST',
          headers: {'Content-Type': 'application/json', 'Authorization': 'Bearer ' + await this.token()},
          body: JSON.stringify({question})});
        const j = await r.json();
        if (!r.ok) throw new Error(j.error ? j.error.message : 'error');
        out.textContent = j.answer;
        for (const c of j.citations) {
          const li = document.createElement('li');
          li.textContent = `${c.title}${c.issue ? ' · ' + c.issue : ''}: “${c.quote}”`;
          list.appendChild(li);
        }
        this.dispatchEvent(new CustomEvent('answer', {detail: j}));
      } catch (err) {
        out.className = 'answer error'; out.textContent = String(err.message || err);
        this.dispatchEvent(new CustomEvent('error', {detail: String(err.message || err)}));
      }
    }
  }
  if (!customElements.get('newsletter-qa')) customElements.define('newsletter-qa', NewsletterQA);
})();
"""
