"""The one door: every protocol adapter reaches the store through the Repository here."""
