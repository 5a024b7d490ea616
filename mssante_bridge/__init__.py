"""The MSSanté bridge: SMTP listener, MIME and IHE XDM unpacking, delivery to the inbox. Built with its issue."""
