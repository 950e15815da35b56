/* stand-in for the compiled app */ console.log("main.dart.js");
