// Fetches /data/info.json and shows what the server said about itself.
"use strict";

fetch("/data/info.json")
  .then((response) => response.json())
  .then((info) => {
    document.getElementById("status").textContent =
      `Served by ${info.server}, a ${info.kind}.`;
  })
  .catch((error) => {
    document.getElementById("status").textContent = `Could not load info: ${error}`;
  });
