"""Image classification with ZFNet and SPP-net (the paper's sections 2-3):
training, the paper's test protocols, export and predict, the embedded set."""
