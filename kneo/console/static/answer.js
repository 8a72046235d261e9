/* Kneo console: a running run's answer as its agents generate it (agents with
 * model.stream: true). The run page's #live-answer names its stream (data-stream: the run's
 * events with answer.delta, read with the session cookie); each delta's text is appended,
 * a turn that ended in tool calls is cleared (its text was not the answer), a replace delta
 * shows the answer as it stands. At the stream's end the page refreshes at once: the final
 * (redacted) answer replaces this one. The element is kept across the page's own refreshes
 * (hx-preserve), and so is its stream. */
(function () {
  "use strict";

  function follow(box) {
    if (box.dataset.following) {
      return;
    }
    box.dataset.following = "1";
    var turn = null;
    var source = new EventSource(box.dataset.stream);
    source.addEventListener("answer.delta", function (message) {
      var data = JSON.parse(message.data).data || {};
      var key = [data.agent, data.turn].join("/");
      if (key !== turn || data.replace) {
        turn = key;
        box.textContent = "";
      }
      if (data.final === false) {
        box.textContent = "";
        return;
      }
      box.textContent += data.text || "";
    });
    source.addEventListener("end", function () {
      source.close();
      var run = box.closest("#run");
      if (run) {
        run.dispatchEvent(new Event("answer-end"));
      }
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        box.dataset.following = "";
      }
    };
  }

  function start() {
    var boxes = document.querySelectorAll("#live-answer[data-stream]");
    for (var i = 0; i < boxes.length; i++) {
      follow(boxes[i]);
    }
  }

  document.addEventListener("DOMContentLoaded", start);
  document.addEventListener("htmx:afterSettle", start);
})();
