// The demo host app's live view: it asks its own server for the events it received from
// bankfeeds-connect, lists them, and updates each customer's row from what they carry.
(function () {
  "use strict";
  var list = document.getElementById("events");
  if (!list) {
    return;
  }
  var source = list.getAttribute("data-source");
  var countText = list.getAttribute("data-count-text");
  var notConnected = list.getAttribute("data-not-connected");
  var shown = {};
  var polls = 0;
  var MAX_POLLS = 3600; // an hour of looking, then a reload starts again

  function updateRow(event) {
    var row = document.getElementById("customer-" + event.customer_id);
    if (!row) {
      return;
    }
    var status = event.status;
    row.querySelector(".connection-status").textContent = status.connection_status || notConnected;
    row.querySelector(".connected-count").textContent = countText
      .replace("{n}", status.accounts_connected)
      .replace("{total}", status.accounts_total);
    if (event.account_id) {
      var account = row.querySelector('li[data-account="' + CSS.escape(event.account_id) + '"]');
      if (account) {
        account.querySelector(".account-status").textContent = event.account_status;
      }
    }
  }

  function show(event) {
    if (shown[event.id]) {
      return;
    }
    shown[event.id] = true;
    var empty = document.getElementById("events-empty");
    if (empty) {
      empty.remove();
    }
    var item = document.createElement("li");
    item.className = "event";
    item.setAttribute("data-type", event.type);
    item.setAttribute("data-customer", event.customer_id);
    var name = document.createElement("strong");
    name.textContent = event.type;
    item.appendChild(name);
    var parts = [event.customer_id, event.detail, event.timestamp].filter(Boolean);
    item.appendChild(document.createTextNode(" · " + parts.join(" · ")));
    list.insertBefore(item, list.firstChild);
    if (event.status) {
      updateRow(event);
    }
  }

  function poll() {
    polls += 1;
    fetch(source, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        return response.ok ? response.json() : { events: [] };
      })
      .then(function (body) {
        body.events.forEach(show);
      })
      .catch(function () {})
      .finally(function () {
        if (polls < MAX_POLLS) {
          setTimeout(poll, 1000);
        }
      });
  }

  poll();
})();
