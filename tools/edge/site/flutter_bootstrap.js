/* stand-in for the Flutter loader */ console.log("flutter_bootstrap");
