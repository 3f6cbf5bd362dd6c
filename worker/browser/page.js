// Runs inside the arena page. Python calls `window[apiName]` through Runtime.evaluate and
// hears back through the CDP binding `window[emitName]` (one JSON message per call), so every
// network chunk reaches the worker the moment the page reads it.
(function (emitName, apiName) {
  'use strict';
  if (Object.prototype.hasOwnProperty.call(window, apiName)) return;

  // Keep the browser's own fetch and decoder, whatever the site wraps later.
  const nativeFetch = window.fetch.bind(window);
  const Decoder = window.TextDecoder;
  const controllers = new Map();

  const emit = (message) => window[emitName](JSON.stringify(message));

  const send = (method, path, body, signal) =>
    nativeFetch(path, {
      method,
      body: JSON.stringify(body),
      headers: { 'content-type': 'text/plain;charset=UTF-8' },
      credentials: 'include',
      signal,
    });

  async function stream(id, method, path, body) {
    const controller = new AbortController();
    controllers.set(id, controller);
    try {
      const response = await send(method, path, body, controller.signal);
      emit({ i: id, k: 'head', status: response.status, headers: Object.fromEntries(response.headers) });
      const reader = response.body.getReader();
      const decoder = new Decoder();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const text = decoder.decode(value, { stream: true });
        if (text) emit({ i: id, k: 'chunk', text });
      }
      const rest = decoder.decode();
      if (rest) emit({ i: id, k: 'chunk', text: rest });
      emit({ i: id, k: 'end' });
    } catch (error) {
      emit({ i: id, k: 'fail', message: String((error && error.message) || error), aborted: controller.signal.aborted });
    } finally {
      controllers.delete(id);
    }
  }

  Object.defineProperty(window, apiName, {
    enumerable: false,
    value: Object.freeze({
      // Starts the request and returns at once; head, chunks and end come through the binding.
      start(id, method, path, body) {
        stream(id, method, path, body);
        return true;
      },
      abort(id) {
        const controller = controllers.get(id);
        if (controller) controller.abort();
        return Boolean(controller);
      },
      // A whole small request (such as stop), answered as the value of the evaluation.
      async call(method, path, body) {
        const response = await send(method, path, body);
        return { status: response.status, text: await response.text() };
      },
      // A GET as the page's own (its cookies, no cache): status, media type and text.
      async get(url) {
        const response = await nativeFetch(url || location.href, { credentials: 'include', cache: 'no-store' });
        return { status: response.status, type: response.headers.get('content-type') || '', text: await response.text() };
      },
      // A server action of the page (Next.js), posted to the page's own URL as its forms do;
      // the result is line 1: of the React Server Components answer.
      async action(id, args) {
        const response = await nativeFetch(location.pathname + location.search, {
          method: 'POST',
          body: JSON.stringify(args),
          headers: { accept: 'text/x-component', 'next-action': id, 'content-type': 'text/plain;charset=UTF-8' },
          credentials: 'include',
        });
        return { status: response.status, text: await response.text() };
      },
      // Upload bytes (base64) to a presigned storage URL, as the site's uploader does.
      async put(url, data, contentType) {
        const binary = atob(data);
        const bytes = new Uint8Array(binary.length);
        for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
        const response = await nativeFetch(url, { method: 'PUT', body: bytes, headers: { 'content-type': contentType } });
        return { status: response.status, text: await response.text() };
      },
      // The bytes at a URL, base64, with their type (a generated image, while its URL is signed).
      async read(url) {
        const response = await nativeFetch(url);
        const blob = await response.blob();
        const dataUrl = await new Promise((resolve, reject) => {
          const reader = new FileReader();
          reader.onload = () => resolve(reader.result);
          reader.onerror = () => reject(reader.error);
          reader.readAsDataURL(blob);
        });
        return { status: response.status, type: blob.type, data: dataUrl.slice(dataUrl.indexOf(',') + 1) };
      },
      // The texts of the page's own scripts that contain `marker` (server action ids live there).
      async scripts(marker) {
        const urls = new Set([...document.scripts].map((script) => script.src).filter(Boolean));
        for (const entry of performance.getEntriesByType('resource')) {
          if (entry.initiatorType === 'script') urls.add(entry.name);
        }
        const own = [...urls].filter((url) => new URL(url).origin === location.origin);
        const texts = await Promise.all(
          own.map((url) => nativeFetch(url).then((response) => response.text(), () => '')),
        );
        return texts.filter((text) => text.includes(marker));
      },
      async mint(siteKey, action) {
        const enterprise = window.grecaptcha.enterprise;
        await new Promise((resolve) => enterprise.ready(resolve));
        return enterprise.execute(siteKey, { action });
      },
      // The site's security check of a flagged account: whether its dialog shows, and the
      // token its v2 checkbox left once a person passed it (not the v3 badge's own field).
      security(dialog, title, field, badge) {
        const shown = [...document.querySelectorAll(dialog)].some(
          (element) => element.textContent.includes(title) && element.checkVisibility(),
        );
        const passed = [...document.querySelectorAll(field)].find(
          (element) => element.value && !element.closest(badge),
        );
        return { shown, token: passed ? passed.value : null };
      },
      // Usable: the binding is in place and grecaptcha has loaded.
      ready() {
        const enterprise = window.grecaptcha && window.grecaptcha.enterprise;
        return typeof window[emitName] === 'function' && Boolean(enterprise && typeof enterprise.execute === 'function');
      },
    }),
  });
})
