// PostGraphile 5 is written for Node 22, and of what Node 22 added it uses
// Promise.withResolvers (ES2024), which Node 20, the Node this project
// installs, lacks. This defines it as the specification does, so that the
// baseline runs on the system's Node instead of a Node binary from npm.
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
