
(define (problem plan_trial_T20260101_000006_000006)
(:domain alfred)
(:objects
agent1 - agent
AlarmClock - object
        Apple - object
        BaseballBat - object
        BasketBall - object
        Bathtub - object
        Blinds - object
        Book - object
        Boots - object
        Bowl - object
        Box - object
        Bread - object
        ButterKnife - object
        CD - object
        Candle - object
        CellPhone - object
        Chair - object
        Cloth - object
        CreditCard - object
        Cup - object
        Curtains - object
        DeskLamp - object
        DishSponge - object
        Egg - object
        FloorLamp - object
        Footstool - object
        Fork - object
        Glassbottle - object
        HandTowel - object
        HousePlant - object
        Kettle - object
        KeyChain - object
        Knife - object
        Ladle - object
        Laptop - object
        LaundryHamperLid - object
        Lettuce - object
        LightSwitch - object
        Mirror - object
        Mug - object
        Newspaper - object
        Painting - object
        Pan - object
        PaperTowel - object
        PaperTowelRoll - object
        Pen - object
        Pencil - object
        PepperShaker - object
        Pillow - object
        Plate - object
        Plunger - object
        Poster - object
        Pot - object
        Potato - object
        RemoteControl - object
        SaltShaker - object
        ScrubBrush - object
        ShowerDoor - object
        ShowerGlass - object
        Sink - object
        SoapBar - object
        SoapBottle - object
        Spatula - object
        Spoon - object
        SprayBottle - object
        Statue - object
        StoveKnob - object
        TeddyBear - object
        Television - object
        TennisRacket - object
        TissueBox - object
        ToiletPaper - object
        ToiletPaperRoll - object
        Tomato - object
        Towel - object
        Vase - object
        Watch - object
        WateringCan - object
        Window - object
        WineBottle - object
AlarmClockType - otype
        AppleType - otype
        BaseballBatType - otype
        BasketBallType - otype
        BathtubType - otype
        BlindsType - otype
        BookType - otype
        BootsType - otype
        BowlType - otype
        BoxType - otype
        BreadType - otype
        ButterKnifeType - otype
        CDType - otype
        CandleType - otype
        CellPhoneType - otype
        ChairType - otype
        ClothType - otype
        CreditCardType - otype
        CupType - otype
        CurtainsType - otype
        DeskLampType - otype
        DishSpongeType - otype
        EggType - otype
        FloorLampType - otype
        FootstoolType - otype
        ForkType - otype
        GlassbottleType - otype
        HandTowelType - otype
        HousePlantType - otype
        KettleType - otype
        KeyChainType - otype
        KnifeType - otype
        LadleType - otype
        LaptopType - otype
        LaundryHamperLidType - otype
        LettuceType - otype
        LightSwitchType - otype
        MirrorType - otype
        MugType - otype
        NewspaperType - otype
        PaintingType - otype
        PanType - otype
        PaperTowelType - otype
        PaperTowelRollType - otype
        PenType - otype
        PencilType - otype
        PepperShakerType - otype
        PillowType - otype
        PlateType - otype
        PlungerType - otype
        PosterType - otype
        PotType - otype
        PotatoType - otype
        RemoteControlType - otype
        SaltShakerType - otype
        ScrubBrushType - otype
        ShowerDoorType - otype
        ShowerGlassType - otype
        SinkType - otype
        SoapBarType - otype
        SoapBottleType - otype
        SpatulaType - otype
        SpoonType - otype
        SprayBottleType - otype
        StatueType - otype
        StoveKnobType - otype
        TeddyBearType - otype
        TelevisionType - otype
        TennisRacketType - otype
        TissueBoxType - otype
        ToiletPaperType - otype
        ToiletPaperRollType - otype
        TomatoType - otype
        TowelType - otype
        VaseType - otype
        WatchType - otype
        WateringCanType - otype
        WindowType - otype
        WineBottleType - otype
ArmChairType - rtype
        BathtubBasinType - rtype
        BedType - rtype
        CabinetType - rtype
        CartType - rtype
        CoffeeMachineType - rtype
        CoffeeTableType - rtype
        CounterTopType - rtype
        DeskType - rtype
        DiningTableType - rtype
        DrawerType - rtype
        DresserType - rtype
        FridgeType - rtype
        GarbageCanType - rtype
        HandTowelHolderType - rtype
        LaundryHamperType - rtype
        MicrowaveType - rtype
        OttomanType - rtype
        PaintingHangerType - rtype
        SafeType - rtype
        ShelfType - rtype
        SideTableType - rtype
        SinkBasinType - rtype
        SofaType - rtype
        StoveBurnerType - rtype
        TVStandType - rtype
        ToasterType - rtype
        ToiletType - rtype
        ToiletPaperHangerType - rtype
        TowelHolderType - rtype


        AlarmClock_bar__minus_02_dot_48_bar__plus_00_dot_68_bar__minus_00_dot_30 - object
        AlarmClock_bar__plus_02_dot_69_bar__plus_01_dot_23_bar__plus_01_dot_40 - object
        Book_bar__plus_02_dot_35_bar__plus_00_dot_89_bar__minus_03_dot_16 - object
        CD_bar__minus_02_dot_44_bar__plus_00_dot_68_bar__minus_00_dot_62 - object
        CellPhone_bar__plus_01_dot_78_bar__plus_00_dot_36_bar__minus_03_dot_03 - object
        Chair_bar__plus_02_dot_58_bar__plus_00_dot_00_bar__minus_02_dot_88 - object
        DeskLamp_bar__plus_02_dot_76_bar__plus_00_dot_89_bar__minus_03_dot_32 - object
        KeyChain_bar__plus_02_dot_76_bar__plus_01_dot_25_bar__plus_01_dot_77 - object
        Laptop_bar__minus_01_dot_31_bar__plus_00_dot_61_bar__minus_01_dot_54 - object
        Mirror_bar__plus_00_dot_53_bar__plus_01_dot_42_bar__plus_02_dot_00 - object
        Mug_bar__plus_02_dot_04_bar__plus_00_dot_89_bar__minus_03_dot_04 - object
        Pen_bar__plus_02_dot_21_bar__plus_00_dot_90_bar__minus_03_dot_39 - object
        Pencil_bar__plus_01_dot_34_bar__plus_00_dot_02_bar__minus_03_dot_38 - object
        Pillow_bar__minus_01_dot_87_bar__plus_00_dot_68_bar__minus_02_dot_26 - object
        Window_bar__plus_02_dot_96_bar__plus_01_dot_51_bar__minus_01_dot_02 - object
        Bed_bar__minus_01_dot_64_bar__minus_00_dot_04_bar__minus_01_dot_86 - receptacle
        Desk_bar__plus_02_dot_32_bar__minus_00_dot_01_bar__minus_03_dot_22 - receptacle
        Drawer_bar__plus_01_dot_88_bar__plus_00_dot_21_bar__minus_02_dot_96 - receptacle
        Drawer_bar__plus_01_dot_88_bar__plus_00_dot_49_bar__minus_02_dot_96 - receptacle
        Dresser_bar__plus_02_dot_68_bar__plus_00_dot_00_bar__plus_01_dot_51 - receptacle
        GarbageCan_bar__plus_01_dot_34_bar__plus_00_dot_00_bar__minus_03_dot_38 - receptacle
        Safe_bar__plus_02_dot_70_bar__plus_01_dot_23_bar__plus_01_dot_77 - receptacle
        Shelf_bar__minus_02_dot_50_bar__plus_01_dot_10_bar__minus_03_dot_00 - receptacle
        SideTable_bar__minus_02_dot_42_bar__plus_00_dot_46_bar__minus_00_dot_51 - receptacle
        loc_bar_0_bar__minus_8_bar_3_bar_45 - location
        loc_bar_8_bar__minus_10_bar_2_bar_60 - location
        loc_bar_3_bar__minus_9_bar_1_bar_45 - location
        loc_bar_9_bar_5_bar_1_bar_60 - location
        loc_bar_5_bar__minus_12_bar_2_bar_60 - location
        loc_bar_9_bar_6_bar_1_bar_45 - location
        loc_bar__minus_7_bar__minus_2_bar_3_bar_60 - location
        loc_bar__minus_6_bar__minus_11_bar_3_bar_0 - location
        loc_bar_9_bar__minus_6_bar_1_bar_15 - location
        loc_bar_8_bar__minus_10_bar_1_bar_60 - location
        loc_bar_2_bar_6_bar_0_bar_30 - location
        loc_bar_1_bar_4_bar_1_bar_30 - location
        )
    

(:init


        (receptacleType Bed_bar__minus_01_dot_64_bar__minus_00_dot_04_bar__minus_01_dot_86 BedType)
        (receptacleType Desk_bar__plus_02_dot_32_bar__minus_00_dot_01_bar__minus_03_dot_22 DeskType)
        (receptacleType Drawer_bar__plus_01_dot_88_bar__plus_00_dot_21_bar__minus_02_dot_96 DrawerType)
        (receptacleType Drawer_bar__plus_01_dot_88_bar__plus_00_dot_49_bar__minus_02_dot_96 DrawerType)
        (receptacleType Dresser_bar__plus_02_dot_68_bar__plus_00_dot_00_bar__plus_01_dot_51 DresserType)
        (receptacleType GarbageCan_bar__plus_01_dot_34_bar__plus_00_dot_00_bar__minus_03_dot_38 GarbageCanType)
        (receptacleType Safe_bar__plus_02_dot_70_bar__plus_01_dot_23_bar__plus_01_dot_77 SafeType)
        (receptacleType SideTable_bar__minus_02_dot_42_bar__plus_00_dot_46_bar__minus_00_dot_51 SideTableType)
        (receptacleType Shelf_bar__minus_02_dot_50_bar__plus_01_dot_10_bar__minus_03_dot_00 ShelfType)
        (objectType Window_bar__plus_02_dot_96_bar__plus_01_dot_51_bar__minus_01_dot_02 WindowType)
        (objectType Chair_bar__plus_02_dot_58_bar__plus_00_dot_00_bar__minus_02_dot_88 ChairType)
        (objectType Mirror_bar__plus_00_dot_53_bar__plus_01_dot_42_bar__plus_02_dot_00 MirrorType)
        (objectType AlarmClock_bar__minus_02_dot_48_bar__plus_00_dot_68_bar__minus_00_dot_30 AlarmClockType)
        (objectType DeskLamp_bar__plus_02_dot_76_bar__plus_00_dot_89_bar__minus_03_dot_32 DeskLampType)
        (objectType AlarmClock_bar__plus_02_dot_69_bar__plus_01_dot_23_bar__plus_01_dot_40 AlarmClockType)
        (objectType Book_bar__plus_02_dot_35_bar__plus_00_dot_89_bar__minus_03_dot_16 BookType)
        (objectType Pen_bar__plus_02_dot_21_bar__plus_00_dot_90_bar__minus_03_dot_39 PenType)
        (objectType CellPhone_bar__plus_01_dot_78_bar__plus_00_dot_36_bar__minus_03_dot_03 CellPhoneType)
        (objectType Pillow_bar__minus_01_dot_87_bar__plus_00_dot_68_bar__minus_02_dot_26 PillowType)
        (objectType Laptop_bar__minus_01_dot_31_bar__plus_00_dot_61_bar__minus_01_dot_54 LaptopType)
        (objectType KeyChain_bar__plus_02_dot_76_bar__plus_01_dot_25_bar__plus_01_dot_77 KeyChainType)
        (objectType CD_bar__minus_02_dot_44_bar__plus_00_dot_68_bar__minus_00_dot_62 CDType)
        (objectType Pencil_bar__plus_01_dot_34_bar__plus_00_dot_02_bar__minus_03_dot_38 PencilType)
        (objectType Mug_bar__plus_02_dot_04_bar__plus_00_dot_89_bar__minus_03_dot_04 MugType)
        (canContain BedType CellPhoneType)
        (canContain BedType BookType)
        (canContain BedType PillowType)
        (canContain BedType LaptopType)
        (canContain DeskType CellPhoneType)
        (canContain DeskType KeyChainType)
        (canContain DeskType AlarmClockType)
        (canContain DeskType CDType)
        (canContain DeskType PencilType)
        (canContain DeskType PenType)
        (canContain DeskType LaptopType)
        (canContain DeskType MugType)
        (canContain DeskType BookType)
        (canContain DrawerType CellPhoneType)
        (canContain DrawerType KeyChainType)
        (canContain DrawerType CDType)
        (canContain DrawerType PencilType)
        (canContain DrawerType PenType)
        (canContain DrawerType BookType)
        (canContain DrawerType CellPhoneType)
        (canContain DrawerType KeyChainType)
        (canContain DrawerType CDType)
        (canContain DrawerType PencilType)
        (canContain DrawerType PenType)
        (canContain DrawerType BookType)
        (canContain DresserType CellPhoneType)
        (canContain DresserType KeyChainType)
        (canContain DresserType AlarmClockType)
        (canContain DresserType CDType)
        (canContain DresserType PencilType)
        (canContain DresserType PenType)
        (canContain DresserType LaptopType)
        (canContain DresserType MugType)
        (canContain DresserType BookType)
        (canContain GarbageCanType CDType)
        (canContain GarbageCanType PencilType)
        (canContain GarbageCanType PenType)
        (canContain SafeType CellPhoneType)
        (canContain SafeType KeyChainType)
        (canContain SafeType CDType)
        (canContain SideTableType CellPhoneType)
        (canContain SideTableType KeyChainType)
        (canContain SideTableType AlarmClockType)
        (canContain SideTableType CDType)
        (canContain SideTableType PencilType)
        (canContain SideTableType PenType)
        (canContain SideTableType LaptopType)
        (canContain SideTableType MugType)
        (canContain SideTableType BookType)
        (pickupable AlarmClock_bar__minus_02_dot_48_bar__plus_00_dot_68_bar__minus_00_dot_30)
        (pickupable AlarmClock_bar__plus_02_dot_69_bar__plus_01_dot_23_bar__plus_01_dot_40)
        (pickupable Book_bar__plus_02_dot_35_bar__plus_00_dot_89_bar__minus_03_dot_16)
        (pickupable Pen_bar__plus_02_dot_21_bar__plus_00_dot_90_bar__minus_03_dot_39)
        (pickupable CellPhone_bar__plus_01_dot_78_bar__plus_00_dot_36_bar__minus_03_dot_03)
        (pickupable Pillow_bar__minus_01_dot_87_bar__plus_00_dot_68_bar__minus_02_dot_26)
        (pickupable Laptop_bar__minus_01_dot_31_bar__plus_00_dot_61_bar__minus_01_dot_54)
        (pickupable KeyChain_bar__plus_02_dot_76_bar__plus_01_dot_25_bar__plus_01_dot_77)
        (pickupable CD_bar__minus_02_dot_44_bar__plus_00_dot_68_bar__minus_00_dot_62)
        (pickupable Pencil_bar__plus_01_dot_34_bar__plus_00_dot_02_bar__minus_03_dot_38)
        (pickupable Mug_bar__plus_02_dot_04_bar__plus_00_dot_89_bar__minus_03_dot_04)
        (isReceptacleObject Mug_bar__plus_02_dot_04_bar__plus_00_dot_89_bar__minus_03_dot_04)
        (openable Drawer_bar__plus_01_dot_88_bar__plus_00_dot_21_bar__minus_02_dot_96)
        (openable Drawer_bar__plus_01_dot_88_bar__plus_00_dot_49_bar__minus_02_dot_96)
        (openable Safe_bar__plus_02_dot_70_bar__plus_01_dot_23_bar__plus_01_dot_77)
        
        (atLocation agent1 loc_bar_1_bar_4_bar_1_bar_30)
        
        (cleanable Mug_bar__plus_02_dot_04_bar__plus_00_dot_89_bar__minus_03_dot_04)
        
        (heatable Mug_bar__plus_02_dot_04_bar__plus_00_dot_89_bar__minus_03_dot_04)
        (coolable Mug_bar__plus_02_dot_04_bar__plus_00_dot_89_bar__minus_03_dot_04)
        
        
        (toggleable DeskLamp_bar__plus_02_dot_76_bar__plus_00_dot_89_bar__minus_03_dot_32)
        
        
        
        (inReceptacle AlarmClock_bar__minus_02_dot_48_bar__plus_00_dot_68_bar__minus_00_dot_30 SideTable_bar__minus_02_dot_42_bar__plus_00_dot_46_bar__minus_00_dot_51)
        (inReceptacle DeskLamp_bar__plus_02_dot_76_bar__plus_00_dot_89_bar__minus_03_dot_32 Desk_bar__plus_02_dot_32_bar__minus_00_dot_01_bar__minus_03_dot_22)
        (inReceptacle AlarmClock_bar__plus_02_dot_69_bar__plus_01_dot_23_bar__plus_01_dot_40 Dresser_bar__plus_02_dot_68_bar__plus_00_dot_00_bar__plus_01_dot_51)
        (inReceptacle Book_bar__plus_02_dot_35_bar__plus_00_dot_89_bar__minus_03_dot_16 Desk_bar__plus_02_dot_32_bar__minus_00_dot_01_bar__minus_03_dot_22)
        (inReceptacle Pen_bar__plus_02_dot_21_bar__plus_00_dot_90_bar__minus_03_dot_39 Desk_bar__plus_02_dot_32_bar__minus_00_dot_01_bar__minus_03_dot_22)
        (inReceptacle CellPhone_bar__plus_01_dot_78_bar__plus_00_dot_36_bar__minus_03_dot_03 Drawer_bar__plus_01_dot_88_bar__plus_00_dot_49_bar__minus_02_dot_96)
        (inReceptacle Pillow_bar__minus_01_dot_87_bar__plus_00_dot_68_bar__minus_02_dot_26 Bed_bar__minus_01_dot_64_bar__minus_00_dot_04_bar__minus_01_dot_86)
        (inReceptacle Laptop_bar__minus_01_dot_31_bar__plus_00_dot_61_bar__minus_01_dot_54 Bed_bar__minus_01_dot_64_bar__minus_00_dot_04_bar__minus_01_dot_86)
        (inReceptacle KeyChain_bar__plus_02_dot_76_bar__plus_01_dot_25_bar__plus_01_dot_77 Safe_bar__plus_02_dot_70_bar__plus_01_dot_23_bar__plus_01_dot_77)
        (inReceptacle CD_bar__minus_02_dot_44_bar__plus_00_dot_68_bar__minus_00_dot_62 SideTable_bar__minus_02_dot_42_bar__plus_00_dot_46_bar__minus_00_dot_51)
        (inReceptacle Pencil_bar__plus_01_dot_34_bar__plus_00_dot_02_bar__minus_03_dot_38 GarbageCan_bar__plus_01_dot_34_bar__plus_00_dot_00_bar__minus_03_dot_38)
        (inReceptacle Mug_bar__plus_02_dot_04_bar__plus_00_dot_89_bar__minus_03_dot_04 Desk_bar__plus_02_dot_32_bar__minus_00_dot_01_bar__minus_03_dot_22)
        
        
        (receptacleAtLocation Bed_bar__minus_01_dot_64_bar__minus_00_dot_04_bar__minus_01_dot_86 loc_bar_0_bar__minus_8_bar_3_bar_45)
        (receptacleAtLocation Desk_bar__plus_02_dot_32_bar__minus_00_dot_01_bar__minus_03_dot_22 loc_bar_8_bar__minus_10_bar_2_bar_60)
        (receptacleAtLocation Drawer_bar__plus_01_dot_88_bar__plus_00_dot_21_bar__minus_02_dot_96 loc_bar_3_bar__minus_9_bar_1_bar_45)
        (receptacleAtLocation Drawer_bar__plus_01_dot_88_bar__plus_00_dot_49_bar__minus_02_dot_96 loc_bar_3_bar__minus_9_bar_1_bar_45)
        (receptacleAtLocation Dresser_bar__plus_02_dot_68_bar__plus_00_dot_00_bar__plus_01_dot_51 loc_bar_9_bar_5_bar_1_bar_60)
        (receptacleAtLocation GarbageCan_bar__plus_01_dot_34_bar__plus_00_dot_00_bar__minus_03_dot_38 loc_bar_5_bar__minus_12_bar_2_bar_60)
        (receptacleAtLocation Safe_bar__plus_02_dot_70_bar__plus_01_dot_23_bar__plus_01_dot_77 loc_bar_9_bar_6_bar_1_bar_45)
        (receptacleAtLocation Shelf_bar__minus_02_dot_50_bar__plus_01_dot_10_bar__minus_03_dot_00 loc_bar__minus_6_bar__minus_11_bar_3_bar_0)
        (receptacleAtLocation SideTable_bar__minus_02_dot_42_bar__plus_00_dot_46_bar__minus_00_dot_51 loc_bar__minus_7_bar__minus_2_bar_3_bar_60)
        (objectAtLocation Window_bar__plus_02_dot_96_bar__plus_01_dot_51_bar__minus_01_dot_02 loc_bar_9_bar__minus_6_bar_1_bar_15)
        (objectAtLocation Chair_bar__plus_02_dot_58_bar__plus_00_dot_00_bar__minus_02_dot_88 loc_bar_8_bar__minus_10_bar_1_bar_60)
        (objectAtLocation Mirror_bar__plus_00_dot_53_bar__plus_01_dot_42_bar__plus_02_dot_00 loc_bar_2_bar_6_bar_0_bar_30)
        (objectAtLocation AlarmClock_bar__minus_02_dot_48_bar__plus_00_dot_68_bar__minus_00_dot_30 loc_bar__minus_7_bar__minus_2_bar_3_bar_60)
        (objectAtLocation DeskLamp_bar__plus_02_dot_76_bar__plus_00_dot_89_bar__minus_03_dot_32 loc_bar_8_bar__minus_10_bar_2_bar_60)
        (objectAtLocation AlarmClock_bar__plus_02_dot_69_bar__plus_01_dot_23_bar__plus_01_dot_40 loc_bar_9_bar_5_bar_1_bar_60)
        (objectAtLocation Book_bar__plus_02_dot_35_bar__plus_00_dot_89_bar__minus_03_dot_16 loc_bar_8_bar__minus_10_bar_2_bar_60)
        (objectAtLocation Pen_bar__plus_02_dot_21_bar__plus_00_dot_90_bar__minus_03_dot_39 loc_bar_8_bar__minus_10_bar_2_bar_60)
        (objectAtLocation CellPhone_bar__plus_01_dot_78_bar__plus_00_dot_36_bar__minus_03_dot_03 loc_bar_3_bar__minus_9_bar_1_bar_45)
        (objectAtLocation Pillow_bar__minus_01_dot_87_bar__plus_00_dot_68_bar__minus_02_dot_26 loc_bar_0_bar__minus_8_bar_3_bar_45)
        (objectAtLocation Laptop_bar__minus_01_dot_31_bar__plus_00_dot_61_bar__minus_01_dot_54 loc_bar_0_bar__minus_8_bar_3_bar_45)
        (objectAtLocation KeyChain_bar__plus_02_dot_76_bar__plus_01_dot_25_bar__plus_01_dot_77 loc_bar_9_bar_6_bar_1_bar_45)
        (objectAtLocation CD_bar__minus_02_dot_44_bar__plus_00_dot_68_bar__minus_00_dot_62 loc_bar__minus_7_bar__minus_2_bar_3_bar_60)
        (objectAtLocation Pencil_bar__plus_01_dot_34_bar__plus_00_dot_02_bar__minus_03_dot_38 loc_bar_5_bar__minus_12_bar_2_bar_60)
        (objectAtLocation Mug_bar__plus_02_dot_04_bar__plus_00_dot_89_bar__minus_03_dot_04 loc_bar_8_bar__minus_10_bar_2_bar_60)
        )
    


        (:goal
             (and
                 (exists (?ot - object
                          ?r - receptacle
                          ?a - agent
                          ?l - location)
                     (and
                         (objectType ?ot DeskLampType)
                         (toggleable ?ot)
                         (isToggled ?ot)
                         (receptacleAtLocation ?r ?l)
                         (atLocation ?a ?l)
                         (inReceptacle ?ot ?r)
                     )
                 )
                 (exists (?o - object
                          ?a - agent)
                     (and
                         (objectType ?o AlarmClockType)
                         (holds ?a ?o)
                     )
                 )
             )
        )
    )
    