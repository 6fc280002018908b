"""The on-disk layouts of the real dense datasets, as words for messages (pure data: config validation reads it
without loading the dense sources' pandas and Pillow)."""

LAYOUTS = {
    "ade20k": "ADEChallengeData2016/ with images/{training,validation}/*.jpg and "
              "annotations/{training,validation}/*.png",
    "voc": "VOCdevkit/VOC2012/ with JPEGImages/*.jpg, SegmentationClass/*.png and "
           "ImageSets/Segmentation/{train,val}.txt",
    "cityscapes": "a directory with leftImg8bit/{train,val}/<city>/*_leftImg8bit.png and "
                  "gtFine/{train,val}/<city>/*_gtFine_labelIds.png",
    "nyu-depth-v2": "a directory with {train,test}/rgb/<id>.(png|jpg) and {train,test}/depth/<id>.(png|npy) "
                    "(16-bit PNG in mm or .npy in metres; 'val' is accepted for 'test')",
}
