"""The kiosk's side of certification (issue 16): requests to central's officers, their answers."""
