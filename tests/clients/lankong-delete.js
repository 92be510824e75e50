// Runs picgo-plugin-lankong's own "sync delete" (its listener of PicGo's `remove` event, which
// the PicGo app emits when an image is deleted from its album) for one uploaded image.
// Usage: node lankong-delete.js CONFIG_JSON KEY IMG_URL → prints the notifications as JSON;
// a failure inside the plugin is printed as {"error": message} (exit status 0 either way).
"use strict";
const { PicGo } = require("picgo");

(async () => {
  const [config, key, imgUrl] = process.argv.slice(2);
  const picgo = new PicGo(config);
  const notifications = [];
  picgo.on("notification", (note) => notifications.push(note));
  const files = [{ type: "lankong", id: key, imgUrl }];
  let error = null;
  try {
    for (const listener of picgo.listeners("remove")) await listener(files, undefined);
  } catch (exc) {
    error = String(exc && exc.message ? exc.message : exc);
  }
  console.log(JSON.stringify({ notifications, error }));
})();
