// The one convenience the console's page has beyond HTML: a box that chooses every dead letter on the page.
// Everything works without it (served by the app; no library).
(function () {
  var all = document.getElementById("pick-all");
  if (!all) { return; }
  all.hidden = false;
  all.addEventListener("change", function () {
    var boxes = document.querySelectorAll("#chosen input[name=ids]");
    for (var i = 0; i < boxes.length; i++) { boxes[i].checked = all.checked; }
  });
})();
