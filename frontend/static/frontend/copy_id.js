// Copy buttons beside shortened ids and hashes: a [data-copy] button puts the full value on the clipboard and
// says so, on the button (its tooltip) and to screen readers (a polite status line).
(function () {
  "use strict";

  function announce(text) {
    var status = document.getElementById("copy-status");
    if (!status) {
      status = document.createElement("div");
      status.id = "copy-status";
      status.className = "visually-hidden";
      status.setAttribute("role", "status");
      status.setAttribute("aria-live", "polite");
      document.body.append(status);
    }
    status.textContent = text;
  }

  // navigator.clipboard needs a secure context (HTTPS or localhost); elsewhere a selected textarea is copied.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.append(area);
      area.select();
      var done = false;
      try { done = document.execCommand("copy"); } catch (error) { done = false; }
      area.remove();
      if (done) resolve(); else reject(new Error("copy refused"));
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) return;
    event.preventDefault();
    var value = button.getAttribute("data-copy");
    copyText(value).then(function () {
      button.setAttribute("data-copied", "true");
      button.title = gettext("Copied");
      announce(interpolate(gettext("Copied %(value)s"), { value: value }, true));
      setTimeout(function () { button.removeAttribute("data-copied"); }, 1500);
    }, function () {
      // The browser refused: show the value selected, for the reader to copy by hand.
      window.prompt(gettext("Copy this value:"), value);
    });
  });
})();
