/* a content-hashed asset */ console.log("hashed");
