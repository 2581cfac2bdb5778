# Rules of the mixup stage.
