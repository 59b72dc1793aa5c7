"""The fleet contract shared by the kiosk and central: schemas, topics, signing, the MQTT client."""
