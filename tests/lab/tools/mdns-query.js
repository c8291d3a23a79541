// An independent mDNS client (the npm package multicast-dns, not python-zeroconf):
// browse for a DNS-SD service type on one interface and print what it resolves as JSON.
// usage: node mdns-query.js INTERFACE_IP SERVICE_TYPE SECONDS
"use strict";
const [iface, serviceType, seconds] = process.argv.slice(2);
const mdns = require("multicast-dns")({ interface: iface, bind: "0.0.0.0", loopback: false });
const found = {};
function remember(record) {
  if (record.type === "PTR" && record.name === serviceType) {
    found[record.data] = found[record.data] || { instance: record.data };
    mdns.query([{ name: record.data, type: "SRV" }, { name: record.data, type: "TXT" }]);
  } else if (record.type === "SRV" && found[record.name]) {
    found[record.name].port = record.data.port;
    found[record.name].target = record.data.target;
  } else if (record.type === "TXT" && found[record.name]) {
    found[record.name].txt = record.data.map((entry) => entry.toString("utf8"));
  }
}
mdns.on("response", (response) => {
  for (const record of [...response.answers, ...(response.additionals || [])]) remember(record);
});
mdns.query({ questions: [{ name: serviceType, type: "PTR" }] });
setTimeout(() => {
  console.log(JSON.stringify(Object.values(found)));
  mdns.destroy();
}, Number(seconds) * 1000);
