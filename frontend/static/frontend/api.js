// The few calls the sealing pages make to the JSON API, with the signed-in session: JSON in and out, the
// CSRF header Django wants on unsafe methods, and every refusal turned into one ApiError {status, message,
// extra} — the shape the API's exception handler answers with.
(function () {
  "use strict";

  function ApiError(status, message, extra) {
    this.name = "ApiError";
    this.status = status;
    this.message = message;
    this.extra = extra || {};
  }
  ApiError.prototype = Object.create(Error.prototype);
  ApiError.prototype.constructor = ApiError;

  // The cookie is the documented source; the form's hidden token covers a page whose cookie is not readable.
  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    var field = document.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function request(method, url, body) {
    var headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
    return fetch(url, {
      method: method,
      headers: headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (response.ok) return data;
        var message = data && data.message ? data.message
          : interpolate(gettext("The server answered %(status)s."), { status: response.status }, true);
        throw new ApiError(response.status, message, data && data.extra);
      });
    }, function () {
      throw new ApiError(0, gettext("The server cannot be reached; check your connection and try again."), {});
    });
  }

  // Ask `read` again until `isDone(answer)`; a few network hiccups or 5xx in a row are tolerated, a 4xx is not.
  // Polls every second at first, then every 3 s, so a node that is slow to come online is not hammered.
  function poll(read, isDone, onProgress) {
    var attempt = 0;
    var failures = 0;
    return new Promise(function (resolve, reject) {
      function again() {
        attempt += 1;
        read().then(function (answer) {
          failures = 0;
          if (isDone(answer)) return resolve(answer);
          if (onProgress) onProgress(answer);
          setTimeout(again, attempt < 30 ? 1000 : 3000);
        }, function (error) {
          failures += 1;
          var transient = error instanceof ApiError && (error.status === 0 || error.status >= 500);
          if (!transient || failures >= 5) return reject(error);
          setTimeout(again, 2000);
        });
      }
      again();
    });
  }

  // libsodium's browser build compiles its WebAssembly asynchronously: everything waits for `sodium.ready`.
  function sodiumReady() {
    if (!window.sodium || !window.sodium.ready) {
      return Promise.reject(new Error(gettext("The encryption library did not load, so nothing can be sealed on this page.")));
    }
    return window.sodium.ready.then(function () { return window.sodium; });
  }

  window.DxApi = {
    ApiError: ApiError,
    get: function (url) { return request("GET", url); },
    post: function (url, body) { return request("POST", url, body); },
    poll: poll,
    sodiumReady: sodiumReady,
  };
})();
