// What the console's page does beyond HTML (served by the app; no library), and everything works without it:
// a box that chooses every dead letter on the page, and the progress of running tasks shown as they go.
(function () {
  var all = document.getElementById("pick-all");
  if (all) {
    all.hidden = false;
    all.addEventListener("change", function () {
      var boxes = document.querySelectorAll("#chosen input[name=ids]");
      for (var i = 0; i < boxes.length; i++) { boxes[i].checked = all.checked; }
    });
  }

  // Tasks: while one is running, ask /admin/tasks.json every second and update its row; once every task shown has
  // ended, load the page again so that the counts and the list show what the tasks did.
  var section = document.getElementById("tasks");
  if (!section || !window.fetch) { return; }
  var url = section.getAttribute("data-progress-url");

  function running() { return section.querySelectorAll("tr[data-state=running]").length > 0; }

  function secondsText(seconds) {
    if (seconds === null || seconds === undefined) { return ""; }
    if (seconds >= 3600) { return " · about " + Math.floor(seconds / 3600) + "h " + Math.floor(seconds % 3600 / 60) + "m left"; }
    if (seconds >= 60) { return " · about " + Math.floor(seconds / 60) + "m " + (seconds % 60) + "s left"; }
    return " · about " + seconds + "s left";
  }

  function show(task) {
    var row = section.querySelector("tr[data-task='" + task.id + "']");
    if (!row) { return false; }
    var bar = row.querySelector("progress");
    bar.max = task.total || 1;
    bar.value = task.total ? task.moved : (task.state === "completed" ? 1 : 0);
    row.querySelector("[data-field=text]").textContent = task.moved + " of " + task.total + " moved" +
      (task.failed ? ", " + task.failed + " failed" : "") + " · " + task.ratePerSecond + "/s (at most " +
      task.rateLimit + "/s)" + secondsText(task.secondsLeft);
    var state = row.querySelector("[data-field=state]");
    state.textContent = task.state + (task.cancelRequested && task.state === "running" ? " (cancelling)" : "");
    state.className = "chip " + task.state;
    var ended = row.getAttribute("data-state") === "running" && task.state !== "running";
    row.setAttribute("data-state", task.state);
    return ended;
  }

  function poll() {
    fetch(url, {credentials: "same-origin", cache: "no-store"}).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (answer) {
      var ended = false;
      for (var i = 0; i < answer.tasks.length; i++) { ended = show(answer.tasks[i]) || ended; }
      if (ended && !running()) { window.location.reload(); return; }
      if (running()) { window.setTimeout(poll, 1000); }
    }).catch(function () { window.setTimeout(poll, 5000); });
  }

  if (running()) { window.setTimeout(poll, 1000); }
})();
