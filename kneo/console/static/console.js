/* Kneo console: what htmx does not do by itself for decision forms (form[data-keep]).
 *
 * A decision form posts with htmx and its answer replaces the page's <main>, as a full page
 * would: a refusal (a field error, a conflict, a session to renew: 4xx) is a page to show,
 * not an error to drop. A network failure or a timeout leaves the form as typed and says so
 * beside its button; the next try clears the message. Without JavaScript the forms post as
 * plain HTML forms. */
(function () {
  "use strict";

  /* The decision form that made the request: the event's own element (a request's
   * events), or the request's (a swap's events fire on the element swapped into). */
  function keptForm(event) {
    var config = event.detail && event.detail.requestConfig;
    var elts = [config && config.elt, event.target];
    for (var i = 0; i < elts.length; i++) {
      var form = elts[i] && elts[i].closest ? elts[i].closest("form[data-keep]") : null;
      if (form) {
        return form;
      }
    }
    return null;
  }

  function say(form, text) {
    var note = form.querySelector(".net-error");
    if (!note) {
      note = document.createElement("p");
      note.className = "net-error field-error";
      note.setAttribute("role", "alert");
      form.appendChild(note);
    }
    note.textContent = text;
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    if (keptForm(event) && event.detail.xhr.status >= 400) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  function failed(event) {
    var form = keptForm(event);
    if (form) {
      say(form, "Not sent: the network failed. Your answer is still here; submit it again.");
    }
  }

  document.addEventListener("htmx:sendError", failed);
  document.addEventListener("htmx:timeout", failed);
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = keptForm(event);
    var note = form && form.querySelector(".net-error");
    if (note) {
      note.remove();
    }
  });
})();
