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
      async mint(siteKey, action) {
        const enterprise = window.grecaptcha.enterprise;
        await new Promise((resolve) => enterprise.ready(resolve));
        return enterprise.execute(siteKey, { action });
      },
      // Usable: the binding is in place and grecaptcha has loaded.
      ready() {
        const enterprise = window.grecaptcha && window.grecaptcha.enterprise;
        return typeof window[emitName] === 'function' && Boolean(enterprise && typeof enterprise.execute === 'function');
      },
    }),
  });
})
