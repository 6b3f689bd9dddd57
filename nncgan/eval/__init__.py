"""Sample quality of a trained GAN, read by a classifier trained as an nncgan graph (`nncgan eval`)."""
