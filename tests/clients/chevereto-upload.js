// Uploads one image with imgbb-uploader in its Chevereto mode (`cheveretoHost`), which posts
// `source` (base64 of a file, a base64 string, or a URL) and `key` to HOST/api/1/upload.
// Usage: node chevereto-upload.js file|base64|url HOST KEY ARG → prints the answer as JSON,
// or the library's error on stderr with exit status 1.
"use strict";
const fs = require("fs");
const imgbbUploader = require("imgbb-uploader");

const [mode, cheveretoHost, apiKey, arg] = process.argv.slice(2);
const options = { apiKey, cheveretoHost };
if (mode === "file") options.imagePath = arg;
if (mode === "base64") options.base64string = fs.readFileSync(arg).toString("base64");
if (mode === "url") options.imageUrl = arg;
imgbbUploader(options)
  .then((answer) => console.log(JSON.stringify(answer)))
  .catch((exc) => { console.error(String(exc)); process.exit(1); });
