"""One service per concern; they decide, render through render/ and send through kube/."""
