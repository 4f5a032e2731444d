// BIQE portal: progressive enhancement only; every page works without this script.
(function () {
  "use strict";

  // Confirm destructive actions in place; without JS the server shows a confirmation page instead.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (!question) return;
    if (!window.confirm(question)) { event.preventDefault(); return; }
    var confirmed = form.querySelector('input[name="confirmed"]');
    if (confirmed) confirmed.value = "yes";
  });

  // Uploads: one click sends once, and the button says that the file is on its way.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || !form.hasAttribute("data-busy-label")) return;
    var button = form.querySelector('button[type="submit"]');
    if (!button) return;
    setTimeout(function () { button.disabled = true; button.textContent = form.getAttribute("data-busy-label"); }, 0);
  });
  window.addEventListener("pageshow", function () {  // back to a page from the cache: buttons work again
    document.querySelectorAll("form[data-busy-label] button[disabled]").forEach(function (button) {
      button.disabled = false;
      button.textContent = button.getAttribute("data-label") || button.textContent;
    });
  });

  // Copy buttons: data-copy="#selector" copies that element's text.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return;
    var text = source.textContent.trim();
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      button.classList.add("copied");
      setTimeout(function () { button.textContent = label; button.classList.remove("copied"); }, 1800);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { selectText(source); });
    } else {
      selectText(source);
      try { if (document.execCommand("copy")) done(); } catch (e) { /* selected: the user copies by hand */ }
    }
  });

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // Times: the server writes UTC; show the browser's local time and keep UTC in the tooltip.
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var date = new Date(el.getAttribute("datetime"));
      if (isNaN(date)) return;
      el.title = el.textContent;
      el.textContent = date.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric",
                                                        hour: "2-digit", minute: "2-digit" });
    });
  }

  // The jobs table refreshes itself while a job is queued or processing.
  function watchJobs() {
    var box = document.getElementById("jobs-table");
    if (!box) return;
    var url = box.getAttribute("data-refresh");
    function tick() {
      if (!box.querySelector('[data-active="1"]')) { setTimeout(tick, 5000); return; }
      if (document.hidden) { setTimeout(tick, 2000); return; }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { if (r.redirected || !r.ok) throw new Error("refresh " + r.status); return r.text(); })
        .then(function (html) { box.innerHTML = html; localTimes(box); setTimeout(tick, 1500); })
        .catch(function () { setTimeout(tick, 5000); });
    }
    setTimeout(tick, 1500);
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    watchJobs();
  });

  // The result viewer: a line in the list and its outline on the page light up together.
  (function viewer() {
    var root = document.getElementById("viewer");
    if (!root) return;
    var svg = document.getElementById("page-svg");
    function activate(number, scroll) {
      root.querySelectorAll(".active").forEach(function (el) { el.classList.remove("active"); });
      var item = document.getElementById("line-" + number);
      var outline = svg && svg.querySelector('polygon[data-line="' + number + '"]');
      if (item) { item.classList.add("active"); if (scroll) item.scrollIntoView({block: "nearest"}); }
      if (outline) outline.classList.add("active");
    }
    root.addEventListener("mouseover", function (event) {
      var item = event.target.closest("li[data-line]");
      if (item) activate(item.getAttribute("data-line"), false);
    });
    root.addEventListener("focusin", function (event) {
      var item = event.target.closest("li[data-line]");
      if (item) activate(item.getAttribute("data-line"), false);
    });
    root.addEventListener("click", function (event) {
      var target = event.target.closest("[data-line]");
      if (target) activate(target.getAttribute("data-line"), target.tagName.toLowerCase() === "polygon");
    });
  })();
})();
