
(define (problem plan_trial_T20260101_000004_000004)
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


        Apple_bar__minus_01_dot_80_bar__plus_00_dot_84_bar__minus_00_dot_70 - object
        Chair_bar__plus_00_dot_44_bar__plus_00_dot_00_bar__plus_02_dot_36 - object
        Cup_bar__plus_00_dot_60_bar__plus_01_dot_82_bar__minus_01_dot_66 - object
        Fork_bar__minus_01_dot_38_bar__plus_00_dot_78_bar__plus_01_dot_09 - object
        LightSwitch_bar__plus_02_dot_35_bar__plus_01_dot_35_bar__plus_00_dot_51 - object
        Potato_bar__plus_01_dot_02_bar__plus_00_dot_99_bar__minus_01_dot_48 - object
        Sink_bar__minus_01_dot_66_bar__plus_00_dot_93_bar__minus_00_dot_11 - object
        StoveKnob_bar__plus_00_dot_96_bar__plus_00_dot_91_bar__minus_01_dot_41 - object
        Tomato_bar__plus_01_dot_20_bar__plus_00_dot_99_bar__minus_01_dot_45 - object
        Tomato_bar__plus_01_dot_85_bar__plus_00_dot_20_bar__plus_01_dot_37 - object
        Window_bar__minus_02_dot_11_bar__plus_01_dot_63_bar__minus_00_dot_10 - object
        Cabinet_bar__minus_01_dot_55_bar__plus_00_dot_40_bar__plus_00_dot_73 - receptacle
        Cabinet_bar__minus_01_dot_55_bar__plus_00_dot_40_bar__plus_01_dot_42 - receptacle
        Cabinet_bar__plus_00_dot_31_bar__plus_02_dot_13_bar__minus_01_dot_62 - receptacle
        CoffeeMachine_bar__plus_01_dot_68_bar__plus_00_dot_90_bar__minus_01_dot_75 - receptacle
        CounterTop_bar__minus_01_dot_60_bar__plus_00_dot_95_bar__plus_00_dot_28 - receptacle
        CounterTop_bar__plus_01_dot_15_bar__plus_00_dot_95_bar__minus_01_dot_52 - receptacle
        DiningTable_bar__plus_00_dot_67_bar__plus_00_dot_01_bar__plus_02_dot_03 - receptacle
        Drawer_bar__minus_01_dot_41_bar__plus_00_dot_78_bar__plus_00_dot_66 - receptacle
        Drawer_bar__minus_01_dot_41_bar__plus_00_dot_78_bar__plus_01_dot_07 - receptacle
        Fridge_bar__minus_01_dot_76_bar__plus_00_dot_00_bar__minus_00_dot_78 - receptacle
        GarbageCan_bar__plus_01_dot_87_bar__plus_00_dot_00_bar__plus_01_dot_39 - receptacle
        Microwave_bar__plus_00_dot_64_bar__plus_01_dot_81_bar__minus_01_dot_71 - receptacle
        Sink_bar__minus_01_dot_66_bar__plus_00_dot_93_bar__minus_00_dot_11_bar_SinkBasin - receptacle
        StoveBurner_bar__plus_00_dot_96_bar__plus_00_dot_93_bar__minus_01_dot_63 - receptacle
        StoveBurner_bar__plus_01_dot_35_bar__plus_00_dot_93_bar__minus_01_dot_63 - receptacle
        loc_bar__minus_3_bar_3_bar_3_bar_45 - location
        loc_bar__minus_3_bar_5_bar_3_bar_45 - location
        loc_bar_1_bar__minus_3_bar_2_bar__minus_30 - location
        loc_bar__minus_3_bar_2_bar_3_bar_45 - location
        loc_bar_4_bar__minus_3_bar_2_bar_45 - location
        loc_bar_2_bar_5_bar_0_bar_60 - location
        loc_bar__minus_2_bar_3_bar_3_bar_60 - location
        loc_bar__minus_2_bar_4_bar_3_bar_60 - location
        loc_bar__minus_4_bar__minus_3_bar_3_bar_30 - location
        loc_bar_6_bar_5_bar_1_bar_60 - location
        loc_bar_2_bar__minus_3_bar_2_bar_0 - location
        loc_bar__minus_3_bar_0_bar_3_bar_60 - location
        loc_bar_5_bar__minus_3_bar_2_bar_45 - location
        loc_bar__minus_3_bar_0_bar_3_bar__minus_15 - location
        loc_bar_6_bar_2_bar_1_bar_15 - location
        loc_bar_0_bar_1_bar_2_bar_30 - location
        )
    

(:init


        (receptacleType Cabinet_bar__minus_01_dot_55_bar__plus_00_dot_40_bar__plus_00_dot_73 CabinetType)
        (receptacleType Cabinet_bar__minus_01_dot_55_bar__plus_00_dot_40_bar__plus_01_dot_42 CabinetType)
        (receptacleType Cabinet_bar__plus_00_dot_31_bar__plus_02_dot_13_bar__minus_01_dot_62 CabinetType)
        (receptacleType CounterTop_bar__minus_01_dot_60_bar__plus_00_dot_95_bar__plus_00_dot_28 CounterTopType)
        (receptacleType CounterTop_bar__plus_01_dot_15_bar__plus_00_dot_95_bar__minus_01_dot_52 CounterTopType)
        (receptacleType DiningTable_bar__plus_00_dot_67_bar__plus_00_dot_01_bar__plus_02_dot_03 DiningTableType)
        (receptacleType Drawer_bar__minus_01_dot_41_bar__plus_00_dot_78_bar__plus_00_dot_66 DrawerType)
        (receptacleType Drawer_bar__minus_01_dot_41_bar__plus_00_dot_78_bar__plus_01_dot_07 DrawerType)
        (receptacleType Fridge_bar__minus_01_dot_76_bar__plus_00_dot_00_bar__minus_00_dot_78 FridgeType)
        (receptacleType GarbageCan_bar__plus_01_dot_87_bar__plus_00_dot_00_bar__plus_01_dot_39 GarbageCanType)
        (receptacleType Microwave_bar__plus_00_dot_64_bar__plus_01_dot_81_bar__minus_01_dot_71 MicrowaveType)
        (receptacleType Sink_bar__minus_01_dot_66_bar__plus_00_dot_93_bar__minus_00_dot_11_bar_SinkBasin SinkBasinType)
        (receptacleType StoveBurner_bar__plus_00_dot_96_bar__plus_00_dot_93_bar__minus_01_dot_63 StoveBurnerType)
        (receptacleType StoveBurner_bar__plus_01_dot_35_bar__plus_00_dot_93_bar__minus_01_dot_63 StoveBurnerType)
        (receptacleType CoffeeMachine_bar__plus_01_dot_68_bar__plus_00_dot_90_bar__minus_01_dot_75 CoffeeMachineType)
        (objectType Sink_bar__minus_01_dot_66_bar__plus_00_dot_93_bar__minus_00_dot_11 SinkType)
        (objectType Window_bar__minus_02_dot_11_bar__plus_01_dot_63_bar__minus_00_dot_10 WindowType)
        (objectType LightSwitch_bar__plus_02_dot_35_bar__plus_01_dot_35_bar__plus_00_dot_51 LightSwitchType)
        (objectType Chair_bar__plus_00_dot_44_bar__plus_00_dot_00_bar__plus_02_dot_36 ChairType)
        (objectType StoveKnob_bar__plus_00_dot_96_bar__plus_00_dot_91_bar__minus_01_dot_41 StoveKnobType)
        (objectType Tomato_bar__plus_01_dot_20_bar__plus_00_dot_99_bar__minus_01_dot_45 TomatoType)
        (objectType Potato_bar__plus_01_dot_02_bar__plus_00_dot_99_bar__minus_01_dot_48 PotatoType)
        (objectType Apple_bar__minus_01_dot_80_bar__plus_00_dot_84_bar__minus_00_dot_70 AppleType)
        (objectType Cup_bar__plus_00_dot_60_bar__plus_01_dot_82_bar__minus_01_dot_66 CupType)
        (objectType Fork_bar__minus_01_dot_38_bar__plus_00_dot_78_bar__plus_01_dot_09 ForkType)
        (objectType Tomato_bar__plus_01_dot_85_bar__plus_00_dot_20_bar__plus_01_dot_37 TomatoType)
        (canContain CabinetType CupType)
        (canContain CabinetType CupType)
        (canContain CabinetType CupType)
        (canContain CounterTopType PotatoType)
        (canContain CounterTopType ForkType)
        (canContain CounterTopType AppleType)
        (canContain CounterTopType TomatoType)
        (canContain CounterTopType CupType)
        (canContain CounterTopType PotatoType)
        (canContain CounterTopType ForkType)
        (canContain CounterTopType AppleType)
        (canContain CounterTopType TomatoType)
        (canContain CounterTopType CupType)
        (canContain DiningTableType PotatoType)
        (canContain DiningTableType ForkType)
        (canContain DiningTableType AppleType)
        (canContain DiningTableType TomatoType)
        (canContain DiningTableType CupType)
        (canContain DrawerType ForkType)
        (canContain DrawerType ForkType)
        (canContain FridgeType PotatoType)
        (canContain FridgeType AppleType)
        (canContain FridgeType TomatoType)
        (canContain FridgeType CupType)
        (canContain GarbageCanType PotatoType)
        (canContain GarbageCanType AppleType)
        (canContain GarbageCanType TomatoType)
        (canContain MicrowaveType PotatoType)
        (canContain MicrowaveType AppleType)
        (canContain MicrowaveType TomatoType)
        (canContain MicrowaveType CupType)
        (canContain SinkBasinType PotatoType)
        (canContain SinkBasinType ForkType)
        (canContain SinkBasinType AppleType)
        (canContain SinkBasinType TomatoType)
        (canContain SinkBasinType CupType)
        (pickupable Tomato_bar__plus_01_dot_20_bar__plus_00_dot_99_bar__minus_01_dot_45)
        (pickupable Potato_bar__plus_01_dot_02_bar__plus_00_dot_99_bar__minus_01_dot_48)
        (pickupable Apple_bar__minus_01_dot_80_bar__plus_00_dot_84_bar__minus_00_dot_70)
        (pickupable Cup_bar__plus_00_dot_60_bar__plus_01_dot_82_bar__minus_01_dot_66)
        (pickupable Fork_bar__minus_01_dot_38_bar__plus_00_dot_78_bar__plus_01_dot_09)
        (pickupable Tomato_bar__plus_01_dot_85_bar__plus_00_dot_20_bar__plus_01_dot_37)
        (isReceptacleObject Cup_bar__plus_00_dot_60_bar__plus_01_dot_82_bar__minus_01_dot_66)
        (openable Cabinet_bar__minus_01_dot_55_bar__plus_00_dot_40_bar__plus_00_dot_73)
        (openable Cabinet_bar__minus_01_dot_55_bar__plus_00_dot_40_bar__plus_01_dot_42)
        (openable Cabinet_bar__plus_00_dot_31_bar__plus_02_dot_13_bar__minus_01_dot_62)
        (openable Drawer_bar__minus_01_dot_41_bar__plus_00_dot_78_bar__plus_00_dot_66)
        (openable Drawer_bar__minus_01_dot_41_bar__plus_00_dot_78_bar__plus_01_dot_07)
        (openable Fridge_bar__minus_01_dot_76_bar__plus_00_dot_00_bar__minus_00_dot_78)
        (openable Microwave_bar__plus_00_dot_64_bar__plus_01_dot_81_bar__minus_01_dot_71)
        
        (atLocation agent1 loc_bar_0_bar_1_bar_2_bar_30)
        
        (cleanable Tomato_bar__plus_01_dot_20_bar__plus_00_dot_99_bar__minus_01_dot_45)
        (cleanable Potato_bar__plus_01_dot_02_bar__plus_00_dot_99_bar__minus_01_dot_48)
        (cleanable Apple_bar__minus_01_dot_80_bar__plus_00_dot_84_bar__minus_00_dot_70)
        (cleanable Cup_bar__plus_00_dot_60_bar__plus_01_dot_82_bar__minus_01_dot_66)
        (cleanable Fork_bar__minus_01_dot_38_bar__plus_00_dot_78_bar__plus_01_dot_09)
        (cleanable Tomato_bar__plus_01_dot_85_bar__plus_00_dot_20_bar__plus_01_dot_37)
        
        (heatable Tomato_bar__plus_01_dot_20_bar__plus_00_dot_99_bar__minus_01_dot_45)
        (heatable Potato_bar__plus_01_dot_02_bar__plus_00_dot_99_bar__minus_01_dot_48)
        (heatable Apple_bar__minus_01_dot_80_bar__plus_00_dot_84_bar__minus_00_dot_70)
        (heatable Cup_bar__plus_00_dot_60_bar__plus_01_dot_82_bar__minus_01_dot_66)
        (heatable Tomato_bar__plus_01_dot_85_bar__plus_00_dot_20_bar__plus_01_dot_37)
        (coolable Tomato_bar__plus_01_dot_20_bar__plus_00_dot_99_bar__minus_01_dot_45)
        (coolable Potato_bar__plus_01_dot_02_bar__plus_00_dot_99_bar__minus_01_dot_48)
        (coolable Apple_bar__minus_01_dot_80_bar__plus_00_dot_84_bar__minus_00_dot_70)
        (coolable Cup_bar__plus_00_dot_60_bar__plus_01_dot_82_bar__minus_01_dot_66)
        (coolable Tomato_bar__plus_01_dot_85_bar__plus_00_dot_20_bar__plus_01_dot_37)
        
        
        
        
        (sliceable Tomato_bar__plus_01_dot_20_bar__plus_00_dot_99_bar__minus_01_dot_45)
        (sliceable Potato_bar__plus_01_dot_02_bar__plus_00_dot_99_bar__minus_01_dot_48)
        (sliceable Apple_bar__minus_01_dot_80_bar__plus_00_dot_84_bar__minus_00_dot_70)
        (sliceable Tomato_bar__plus_01_dot_85_bar__plus_00_dot_20_bar__plus_01_dot_37)
        
        (inReceptacle Tomato_bar__plus_01_dot_20_bar__plus_00_dot_99_bar__minus_01_dot_45 CounterTop_bar__plus_01_dot_15_bar__plus_00_dot_95_bar__minus_01_dot_52)
        (inReceptacle Potato_bar__plus_01_dot_02_bar__plus_00_dot_99_bar__minus_01_dot_48 CounterTop_bar__plus_01_dot_15_bar__plus_00_dot_95_bar__minus_01_dot_52)
        (inReceptacle Apple_bar__minus_01_dot_80_bar__plus_00_dot_84_bar__minus_00_dot_70 Fridge_bar__minus_01_dot_76_bar__plus_00_dot_00_bar__minus_00_dot_78)
        (inReceptacle Cup_bar__plus_00_dot_60_bar__plus_01_dot_82_bar__minus_01_dot_66 Microwave_bar__plus_00_dot_64_bar__plus_01_dot_81_bar__minus_01_dot_71)
        (inReceptacle Fork_bar__minus_01_dot_38_bar__plus_00_dot_78_bar__plus_01_dot_09 Drawer_bar__minus_01_dot_41_bar__plus_00_dot_78_bar__plus_01_dot_07)
        (inReceptacle Tomato_bar__plus_01_dot_85_bar__plus_00_dot_20_bar__plus_01_dot_37 GarbageCan_bar__plus_01_dot_87_bar__plus_00_dot_00_bar__plus_01_dot_39)
        
        
        (receptacleAtLocation Cabinet_bar__minus_01_dot_55_bar__plus_00_dot_40_bar__plus_00_dot_73 loc_bar__minus_3_bar_3_bar_3_bar_45)
        (receptacleAtLocation Cabinet_bar__minus_01_dot_55_bar__plus_00_dot_40_bar__plus_01_dot_42 loc_bar__minus_3_bar_5_bar_3_bar_45)
        (receptacleAtLocation Cabinet_bar__plus_00_dot_31_bar__plus_02_dot_13_bar__minus_01_dot_62 loc_bar_1_bar__minus_3_bar_2_bar__minus_30)
        (receptacleAtLocation CoffeeMachine_bar__plus_01_dot_68_bar__plus_00_dot_90_bar__minus_01_dot_75 loc_bar_5_bar__minus_3_bar_2_bar_45)
        (receptacleAtLocation CounterTop_bar__minus_01_dot_60_bar__plus_00_dot_95_bar__plus_00_dot_28 loc_bar__minus_3_bar_2_bar_3_bar_45)
        (receptacleAtLocation CounterTop_bar__plus_01_dot_15_bar__plus_00_dot_95_bar__minus_01_dot_52 loc_bar_4_bar__minus_3_bar_2_bar_45)
        (receptacleAtLocation DiningTable_bar__plus_00_dot_67_bar__plus_00_dot_01_bar__plus_02_dot_03 loc_bar_2_bar_5_bar_0_bar_60)
        (receptacleAtLocation Drawer_bar__minus_01_dot_41_bar__plus_00_dot_78_bar__plus_00_dot_66 loc_bar__minus_2_bar_3_bar_3_bar_60)
        (receptacleAtLocation Drawer_bar__minus_01_dot_41_bar__plus_00_dot_78_bar__plus_01_dot_07 loc_bar__minus_2_bar_4_bar_3_bar_60)
        (receptacleAtLocation Fridge_bar__minus_01_dot_76_bar__plus_00_dot_00_bar__minus_00_dot_78 loc_bar__minus_4_bar__minus_3_bar_3_bar_30)
        (receptacleAtLocation GarbageCan_bar__plus_01_dot_87_bar__plus_00_dot_00_bar__plus_01_dot_39 loc_bar_6_bar_5_bar_1_bar_60)
        (receptacleAtLocation Microwave_bar__plus_00_dot_64_bar__plus_01_dot_81_bar__minus_01_dot_71 loc_bar_2_bar__minus_3_bar_2_bar_0)
        (receptacleAtLocation Sink_bar__minus_01_dot_66_bar__plus_00_dot_93_bar__minus_00_dot_11_bar_SinkBasin loc_bar__minus_3_bar_0_bar_3_bar_60)
        (receptacleAtLocation StoveBurner_bar__plus_00_dot_96_bar__plus_00_dot_93_bar__minus_01_dot_63 loc_bar_4_bar__minus_3_bar_2_bar_45)
        (receptacleAtLocation StoveBurner_bar__plus_01_dot_35_bar__plus_00_dot_93_bar__minus_01_dot_63 loc_bar_4_bar__minus_3_bar_2_bar_45)
        (objectAtLocation Sink_bar__minus_01_dot_66_bar__plus_00_dot_93_bar__minus_00_dot_11 loc_bar__minus_3_bar_0_bar_3_bar_60)
        (objectAtLocation Window_bar__minus_02_dot_11_bar__plus_01_dot_63_bar__minus_00_dot_10 loc_bar__minus_3_bar_0_bar_3_bar__minus_15)
        (objectAtLocation LightSwitch_bar__plus_02_dot_35_bar__plus_01_dot_35_bar__plus_00_dot_51 loc_bar_6_bar_2_bar_1_bar_15)
        (objectAtLocation Chair_bar__plus_00_dot_44_bar__plus_00_dot_00_bar__plus_02_dot_36 loc_bar_2_bar_5_bar_0_bar_60)
        (objectAtLocation StoveKnob_bar__plus_00_dot_96_bar__plus_00_dot_91_bar__minus_01_dot_41 loc_bar_4_bar__minus_3_bar_2_bar_45)
        (objectAtLocation Tomato_bar__plus_01_dot_20_bar__plus_00_dot_99_bar__minus_01_dot_45 loc_bar_4_bar__minus_3_bar_2_bar_45)
        (objectAtLocation Potato_bar__plus_01_dot_02_bar__plus_00_dot_99_bar__minus_01_dot_48 loc_bar_4_bar__minus_3_bar_2_bar_45)
        (objectAtLocation Apple_bar__minus_01_dot_80_bar__plus_00_dot_84_bar__minus_00_dot_70 loc_bar__minus_4_bar__minus_3_bar_3_bar_30)
        (objectAtLocation Cup_bar__plus_00_dot_60_bar__plus_01_dot_82_bar__minus_01_dot_66 loc_bar_2_bar__minus_3_bar_2_bar_0)
        (objectAtLocation Fork_bar__minus_01_dot_38_bar__plus_00_dot_78_bar__plus_01_dot_09 loc_bar__minus_2_bar_4_bar_3_bar_60)
        (objectAtLocation Tomato_bar__plus_01_dot_85_bar__plus_00_dot_20_bar__plus_01_dot_37 loc_bar_6_bar_5_bar_1_bar_60)
        )
    


        (:goal
            (and
                (exists (?r - receptacle)
                    (exists (?o - object)
                        (and
                            (coolable ?o)
                            (objectType ?o TomatoType)
                            (receptacleType ?r MicrowaveType)
                            (isCool ?o)
                            (inReceptacle ?o ?r)
                        )
                    )
                )
            )
        )
    )
    