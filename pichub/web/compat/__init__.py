"""Other image hosts' APIs, as thin adapters over PicHub's services: Lsky Pro V2 and Chevereto
V1, so that the clients written for them (PicGo's lankong plugin, ShareX, imgBB tools) work
unchanged. Their errors keep their shapes (`web.shapes`)."""
